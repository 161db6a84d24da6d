// A rank outlives its launcher only by moments. When mpirun (or the orted / prted daemon of a
// remote node, or slurmstepd) is killed with SIGKILL, its ranks are reparented and keep
// computing until they next write to the dead launcher's pipe or MPI notices a lost peer:
// seconds, up to a whole block. Jobs killed by a scheduler or by hand must not leave ranks
// holding GPUs, memory and the checkpoint file.
#pragma once

namespace gptqd {

// When this process was started by a launcher (Open MPI's mpirun / orted, a PMI or PMIx
// launcher such as srun; told by the environment they set), starts a detached thread that
// polls the parent process every kLauncherPollMs and, once the parent has changed (it died and
// the process was reparented), logs one line and ends the process with exit code 1 at once
// (_exit: no collective, no checkpoint write; the checkpoint survives as it survives a kill).
// A process started from a shell (a singleton run, tests) is left alone: its parent may end
// without that meaning anything. Call once, first thing in main().
void exit_with_launcher();

constexpr int kLauncherPollMs = 100;

}  // namespace gptqd
