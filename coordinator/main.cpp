// gptqd command line: parses arguments and dispatches to library calls.
int main() { return 0; }
