// The job's liveness rule: a rank that makes no progress for parallel.stall_timeout seconds (a
// SIGSTOPped process, a stalled NFS mount, a swapped-out node, a hung device) ends the job with
// one line naming it, its host and what it was doing, instead of leaving the other ranks
// waiting forever.
//
// How a rank knows that another one progresses: every rank tells every other one what it does
// (a "beacon": its last progress phase), when its phase changes (report_progress) and, while
// it waits in an MPI wait (transport.h mpi_wait_yielding), every beat (timeout / 8, at most
// 30 s). Beacons travel on a communicator of their own, so they never match a transfer of the
// job. A waiting rank is the judge: it drains the beacons, and once a peer has been silent for
// the timeout (counted from the later of its last beacon and the start of the judge's current
// wait, so a judge that was busy computing blames nobody for its own absence) it throws
// StallError. A rank that computes sends nothing between its progress points, so a phase
// longer than the timeout counts as a stall: the default timeout covers the slowest block the
// plan predicts several times over (coordinator/stall_timeout.h).
//
// One line for the job: every waiting rank may see the stall; the lowest rank that is not
// silent reports it at the timeout, the next one kGraceSeconds later, and so on, so the first
// report's MPI_Abort normally ends the others before they speak.
//
// Calls that wait inside MPI where no poll can run (the data phase of the replicas' blocking
// collectives, HDF5's collective metadata calls, ScaLAPACK) are marked with a BlockingSection.
// A watchdog thread ends the process (one line, exit code 1; the launcher then ends the job)
// once the main thread has been inside one for the timeout (+ kGraceSeconds x rank, so one
// rank speaks first): a rank stopped in the middle of such a call cannot be told apart from
// its partners there, but the job no longer waits for it forever.
//
// Threads: only the thread that calls MPI (the main thread) may use a Liveness; the watchdog
// reads only the BlockingSection marks, which are atomic.
#pragma once

#include <mpi.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <list>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "base/check.h"

namespace gptqd {

// A stalled rank found by a waiting one. Its what() is the job's one line about it. The top of
// each rank logs it and aborts the job; code that agrees on errors in a collective
// (collective_try) must let it through, since the stalled rank would never join.
class StallError : public Error {
 public:
  explicit StallError(const std::string& msg) : Error(msg) {}
};

class Liveness {
 public:
  using Clock = std::chrono::steady_clock;

  // Collective over comm (every rank of the job). timeout_s > 0; `rule` says where the value
  // comes from (e.g. "parallel.stall_timeout: 5 s"), for the stall line.
  Liveness(MPI_Comm comm, double timeout_s, std::string rule);
  // Stops the watchdog and frees its requests and communicator handle without waiting (an
  // exception may be unwinding towards MPI_Abort; call finish() on the way out of a job that
  // ends in step).
  ~Liveness();
  Liveness(const Liveness&) = delete;
  Liveness& operator=(const Liveness&) = delete;

  // This rank now does `phase` (one line, e.g. "run w4g128 block 2 (3/4 of stage 0): GPTQ of
  // mlp.dense_h_to_4h"). Tells the other ranks (at most one beacon per kMinGap; a later call or
  // wait sends the newest phase). Beacons are sent only here and in waits, so their rate is the
  // job's own rate of progress, plus one per beat while waiting.
  void progress(std::string phase);

  // Sends the newest phase now if progress() held it back (kMinGap).
  void flush();

  // Called by waits (mpi_wait_yielding) while they wait: drains the beacons, sends this rank's
  // beat, and applies the rule. `wait_start`: when the current wait began. Throws StallError.
  // Cheap when called often (does its work at most every kPollGap).
  void poll(Clock::time_point wait_start);

  // Collective: the job's orderly end. Waits (under the rule) until every rank is here, stops
  // the beacons and receives every one still in flight, so nothing is left pending at
  // MPI_Finalize. After it, poll() and progress() do nothing.
  void finish();

  double timeout_seconds() const { return timeout_s_; }

  // The main thread enters / leaves a call that waits inside MPI (BlockingSection).
  void enter_blocking(const char* what);
  void leave_blocking();

  static constexpr double kGraceSeconds = 2;
  // Phases closer together than this share one beacon (the later one goes with the next call):
  // a model whose blocks take milliseconds would otherwise send thousands a second. A rank that
  // stalls within kMinGap of its previous report may be named with that report's phase.
  static constexpr auto kMinGap = std::chrono::milliseconds(1);
  static constexpr auto kPollGap = std::chrono::milliseconds(10);
  static constexpr size_t kPhaseBytes = 200;  // beacon text, NUL included; longer is cut
  static constexpr size_t kMaxInFlight = 16;  // beacons to one peer not yet delivered
  static constexpr auto kWatchdogPeriod = std::chrono::milliseconds(250);

 private:
  struct Beacon {
    char phase[kPhaseBytes];
  };
  struct Outgoing {
    Beacon msg;
    MPI_Request req = MPI_REQUEST_NULL;
  };
  struct Peer {
    std::string host;
    std::string phase = "starting the job";
    Clock::time_point last_heard;
    std::list<Outgoing> in_flight;  // stable addresses: MPI reads msg until req completes
    int64_t sent = 0, received = 0;
  };

  void send_beacons();
  void drain();
  void reap_sends(Peer& p);
  [[noreturn]] void report_stall(int rank, double silent_s) const;
  void watch();  // the watchdog thread

  MPI_Comm comm_ = MPI_COMM_NULL;  // a duplicate of the job's communicator: beacons only
  int rank_ = 0, size_ = 1;
  double timeout_s_;
  std::string rule_;
  Clock::duration timeout_, beat_;
  Clock::time_point created_, last_sent_, last_poll_;
  std::string phase_ = "starting the job";
  bool dirty_ = false;     // phase_ changed since the last beacon
  bool finished_ = false;  // finish() ran (or is past the point where beacons stop)
  std::vector<Peer> peers_;

  // The watchdog: the main thread's BlockingSection (0: none; else its start, steady clock
  // ticks) and what it is.
  std::atomic<Clock::rep> blocking_since_{0};
  std::atomic<const char*> blocking_what_{nullptr};
  std::mutex watch_mutex_;
  std::condition_variable watch_wake_;
  bool watch_stop_ = false;
  std::thread watchdog_;
};

// Marks, for its scope, a call of the main thread that waits inside MPI without polling (see
// above); nothing outside a job. `what` names the call for the watchdog's line (a literal).
class BlockingSection {
 public:
  explicit BlockingSection(const char* what);
  ~BlockingSection();
  BlockingSection(const BlockingSection&) = delete;
  BlockingSection& operator=(const BlockingSection&) = delete;

 private:
  Liveness* monitor_;
};

// The monitor of the job that runs now, used by mpi_wait_yielding and report_progress; none
// outside a job (then both do nothing but their plain work). Set for a scope by the job.
class LivenessScope {
 public:
  explicit LivenessScope(Liveness* monitor);
  ~LivenessScope();
  LivenessScope(const LivenessScope&) = delete;
  LivenessScope& operator=(const LivenessScope&) = delete;

 private:
  Liveness* previous_;
};

Liveness* current_liveness();

// What this rank does from now on: `context` (set by set_progress_context, e.g. the run and
// block) + ": " + what. Tells the job's monitor, if any.
void report_progress(std::string_view what);
void set_progress_context(std::string context);
// Tells the job's monitor, if any, the newest phase now (Liveness::flush).
void flush_progress();

}  // namespace gptqd
