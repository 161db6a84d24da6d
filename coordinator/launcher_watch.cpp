#include "coordinator/launcher_watch.h"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <thread>

#include "base/log.h"

namespace gptqd {
namespace {

// Set by Open MPI's launchers (mpirun and orted in 4.x, prte in 5.x) and by PMI / PMIx
// launchers (srun) in every process they start.
bool started_by_launcher() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK"})
    if (std::getenv(var)) return true;
  return false;
}

}  // namespace

void exit_with_launcher() {
  if (!started_by_launcher()) return;
  const pid_t launcher = getppid();
  if (launcher <= 1) return;  // already orphaned, or started by init: nothing to watch
  std::thread([launcher] {
    // getppid() is the only thing this thread touches until it fires: nothing to
    // synchronize with the rest of the process, and nothing to join at exit.
    while (getppid() == launcher)
      std::this_thread::sleep_for(std::chrono::milliseconds(kLauncherPollMs));
    // The launcher held our stderr: this line may go nowhere (or end the process by SIGPIPE,
    // which is as good).
    GPTQD_LOG_ERROR("error: the launcher (pid {}) has ended; this rank ends too", launcher);
    spdlog::default_logger()->flush();
    _exit(1);
  }).detach();
}

}  // namespace gptqd
