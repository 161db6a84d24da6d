// An LD_PRELOAD shim that makes writes to one file fail, for tests/cli/hostile_messages.sh: what a
// full disk, a quota or a broken file system does to a checkpoint in the middle of a job, without
// mounting anything. Built by the test with `cc -shared -fPIC`.
//
// Environment (the shim does nothing unless GPTQD_FAULT_PATH is set):
//   GPTQD_FAULT_PATH   writes to files whose path ends with this text are counted and may fail
//   GPTQD_FAULT_AFTER  bytes each process may write to them before the faults start (default 0)
//   GPTQD_FAULT_MODE   enospc: every later write fails with ENOSPC (a full disk, a quota);
//                      short: every later write stores half of what it is given and returns
//                      that count (a file system that returns short writes)
// The write calls that HDF5, MPI-IO (OMPIO and ROMIO) and gptqd use: write, pwrite, pwrite64,
// writev, pwritev, pwritev64.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

static atomic_llong written;

// Whether fd is the file under test.
static int targeted(int fd) {
  const char* want = getenv("GPTQD_FAULT_PATH");
  if (!want || !*want) return 0;
  char link[64], path[PATH_MAX];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  const ssize_t len = readlink(link, path, sizeof path - 1);
  if (len <= 0) return 0;
  path[len] = '\0';
  const size_t w = strlen(want);
  return (size_t)len >= w && strcmp(path + len - w, want) == 0;
}

// -1: pass the write through unchanged; otherwise the number of bytes to pass (0 means: fail it
// with ENOSPC).
static long long fault(int fd, size_t n) {
  if (n == 0 || !targeted(fd)) return -1;
  const char* after = getenv("GPTQD_FAULT_AFTER");
  const long long limit = after ? atoll(after) : 0;
  const long long before = atomic_fetch_add(&written, (long long)n);
  if (before + (long long)n <= limit) return -1;
  const char* mode = getenv("GPTQD_FAULT_MODE");
  if (mode && strcmp(mode, "short") == 0) return n > 1 ? (long long)(n / 2) : 1;
  return 0;
}

#define REAL(name, type) ((type)dlsym(RTLD_NEXT, name))

ssize_t write(int fd, const void* buf, size_t n) {
  ssize_t (*real)(int, const void*, size_t) = REAL("write", ssize_t(*)(int, const void*, size_t));
  const long long f = fault(fd, n);
  if (f == 0) return errno = ENOSPC, -1;
  return real(fd, buf, f < 0 ? n : (size_t)f);
}

ssize_t pwrite(int fd, const void* buf, size_t n, off_t off) {
  ssize_t (*real)(int, const void*, size_t, off_t) =
      REAL("pwrite", ssize_t(*)(int, const void*, size_t, off_t));
  const long long f = fault(fd, n);
  if (f == 0) return errno = ENOSPC, -1;
  return real(fd, buf, f < 0 ? n : (size_t)f, off);
}

ssize_t pwrite64(int fd, const void* buf, size_t n, off_t off) {
  ssize_t (*real)(int, const void*, size_t, off_t) =
      REAL("pwrite64", ssize_t(*)(int, const void*, size_t, off_t));
  const long long f = fault(fd, n);
  if (f == 0) return errno = ENOSPC, -1;
  return real(fd, buf, f < 0 ? n : (size_t)f, off);
}

static size_t iov_bytes(const struct iovec* iov, int cnt) {
  size_t n = 0;
  for (int i = 0; i < cnt; ++i) n += iov[i].iov_len;
  return n;
}

// A short vector write stores the first part only: the first iovec, halved.
static ssize_t short_iov(int fd, const struct iovec* iov, int cnt, off_t off, int positioned,
                         long long keep) {
  (void)cnt;
  size_t n = iov[0].iov_len < (size_t)keep ? iov[0].iov_len : (size_t)keep;
  if (n == 0) n = 1;
  if (positioned)
    return REAL("pwrite", ssize_t(*)(int, const void*, size_t, off_t))(fd, iov[0].iov_base, n, off);
  return REAL("write", ssize_t(*)(int, const void*, size_t))(fd, iov[0].iov_base, n);
}

ssize_t writev(int fd, const struct iovec* iov, int cnt) {
  ssize_t (*real)(int, const struct iovec*, int) =
      REAL("writev", ssize_t(*)(int, const struct iovec*, int));
  const long long f = fault(fd, iov_bytes(iov, cnt));
  if (f == 0) return errno = ENOSPC, -1;
  if (f > 0) return short_iov(fd, iov, cnt, 0, 0, f);
  return real(fd, iov, cnt);
}

ssize_t pwritev(int fd, const struct iovec* iov, int cnt, off_t off) {
  ssize_t (*real)(int, const struct iovec*, int, off_t) =
      REAL("pwritev", ssize_t(*)(int, const struct iovec*, int, off_t));
  const long long f = fault(fd, iov_bytes(iov, cnt));
  if (f == 0) return errno = ENOSPC, -1;
  if (f > 0) return short_iov(fd, iov, cnt, off, 1, f);
  return real(fd, iov, cnt, off);
}

ssize_t pwritev64(int fd, const struct iovec* iov, int cnt, off_t off) {
  ssize_t (*real)(int, const struct iovec*, int, off_t) =
      REAL("pwritev64", ssize_t(*)(int, const struct iovec*, int, off_t));
  const long long f = fault(fd, iov_bytes(iov, cnt));
  if (f == 0) return errno = ENOSPC, -1;
  if (f > 0) return short_iov(fd, iov, cnt, off, 1, f);
  return real(fd, iov, cnt, off);
}
