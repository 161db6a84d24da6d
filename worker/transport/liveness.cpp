#include "worker/transport/liveness.h"

#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>

#include "base/log.h"
#include "worker/transport/transport.h"

namespace gptqd {
namespace {

constexpr int kBeaconTag = 1;
constexpr size_t kHostBytes = 256;
// The beat: often enough that a waiting rank is heard well within the timeout, rarely enough
// that thousands of waiting ranks do not flood each other (each beat is one message per peer).
constexpr double kBeatsPerTimeout = 8;
constexpr double kMaxBeatSeconds = 30;

Liveness* g_monitor = nullptr;
std::string g_context;

std::string host_name() {
  char buf[kHostBytes] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

double seconds(Liveness::Clock::duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

Liveness::Liveness(MPI_Comm comm, double timeout_s, std::string rule)
    : timeout_s_(timeout_s), rule_(std::move(rule)) {
  GPTQD_CHECK(timeout_s > 0, "stall timeout {} s", timeout_s);
  MPI_Comm_dup(comm, &comm_);
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
  timeout_ = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s));
  beat_ = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(std::min(timeout_s / kBeatsPerTimeout, kMaxBeatSeconds)));

  std::vector<char> hosts(kHostBytes * static_cast<size_t>(size_));
  std::string mine = host_name();
  mine.resize(kHostBytes - 1);
  MPI_Request r;
  MPI_Iallgather(mine.c_str(), static_cast<int>(kHostBytes), MPI_CHAR, hosts.data(),
                 static_cast<int>(kHostBytes), MPI_CHAR, comm_, &r);
  GPTQD_CHECK(mpi_wait_yielding(&r, MPI_STATUS_IGNORE) == MPI_SUCCESS,
              "gathering the ranks' host names failed");
  created_ = last_sent_ = last_poll_ = Clock::now();
  peers_.resize(static_cast<size_t>(size_));
  for (int i = 0; i < size_; ++i) {
    peers_[i].host = std::string(hosts.data() + kHostBytes * static_cast<size_t>(i));
    peers_[i].last_heard = created_;
  }
  if (size_ > 1) watchdog_ = std::thread([this] { watch(); });
}

void Liveness::enter_blocking(const char* what) {
  blocking_what_.store(what);
  blocking_since_.store(Clock::now().time_since_epoch().count());
}

void Liveness::leave_blocking() { blocking_since_.store(0); }

void Liveness::watch() {
  const auto limit = timeout_ + std::chrono::duration_cast<Clock::duration>(
                                    std::chrono::duration<double>(kGraceSeconds * rank_));
  std::unique_lock<std::mutex> lock(watch_mutex_);
  while (!watch_wake_.wait_for(lock, kWatchdogPeriod, [this] { return watch_stop_; })) {
    const Clock::rep since = blocking_since_.load();
    if (since == 0) continue;
    const auto inside = Clock::now() - Clock::time_point(Clock::duration(since));
    if (inside <= limit) continue;
    // The main thread is inside MPI and cannot throw: this thread speaks for the rank and ends
    // it, and the launcher ends the job (as for a rank that dies).
    GPTQD_LOG_ERROR(
        "error: rank {} on host {}: no progress for {:.1f} s inside {}, which every rank it "
        "waits for had entered: one of them stalled in the middle of it ({}). This rank ends, "
        "and the job with it; rerun the same command to resume from the checkpoint",
        rank_, peers_[rank_].host, seconds(inside), blocking_what_.load(), rule_);
    spdlog::default_logger()->flush();
    _exit(1);
  }
}

Liveness::~Liveness() {
  if (watchdog_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(watch_mutex_);
      watch_stop_ = true;
    }
    watch_wake_.notify_all();
    watchdog_.join();
  }
  for (Peer& p : peers_)
    for (Outgoing& o : p.in_flight)
      if (o.req != MPI_REQUEST_NULL) MPI_Request_free(&o.req);
  // MPI_Comm_free is collective in principle; a job unwinding towards MPI_Abort must not wait
  // for it, and MPI_Finalize releases the handle either way.
  if (finished_ && comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

void Liveness::reap_sends(Peer& p) {
  for (auto it = p.in_flight.begin(); it != p.in_flight.end();) {
    int done = 0;
    MPI_Test(&it->req, &done, MPI_STATUS_IGNORE);
    it = done ? p.in_flight.erase(it) : std::next(it);
  }
}

void Liveness::send_beacons() {
  Beacon msg{};
  std::strncpy(msg.phase, phase_.c_str(), kPhaseBytes - 1);
  for (int i = 0; i < size_; ++i) {
    if (i == rank_) continue;
    Peer& p = peers_[i];
    reap_sends(p);
    // A peer that has not taken the last kMaxInFlight beacons is not draining (stalled, or busy
    // in a long phase): one more would only queue behind them.
    if (p.in_flight.size() >= kMaxInFlight) continue;
    p.in_flight.push_back(Outgoing{msg, MPI_REQUEST_NULL});
    Outgoing& o = p.in_flight.back();
    const int rc = MPI_Isend(&o.msg, sizeof o.msg, MPI_BYTE, i, kBeaconTag, comm_, &o.req);
    GPTQD_CHECK(rc == MPI_SUCCESS, "sending a liveness beacon to rank {} failed (MPI error {})", i,
                rc);
    ++p.sent;
  }
  last_sent_ = Clock::now();
  dirty_ = false;
}

void Liveness::drain() {
  for (;;) {
    int flag = 0;
    MPI_Status st;
    MPI_Iprobe(MPI_ANY_SOURCE, kBeaconTag, comm_, &flag, &st);
    if (!flag) return;
    Beacon msg{};
    MPI_Recv(&msg, sizeof msg, MPI_BYTE, st.MPI_SOURCE, kBeaconTag, comm_, MPI_STATUS_IGNORE);
    msg.phase[kPhaseBytes - 1] = '\0';
    Peer& p = peers_[st.MPI_SOURCE];
    p.phase = msg.phase;
    p.last_heard = Clock::now();
    ++p.received;
  }
}

void Liveness::progress(std::string phase) {
  if (finished_) return;
  phase_ = std::move(phase);
  dirty_ = true;
  const auto now = Clock::now();
  if (now - last_sent_ < kMinGap) return;
  drain();
  send_beacons();
}

void Liveness::flush() {
  if (finished_ || !dirty_) return;
  drain();
  send_beacons();
}

void Liveness::poll(Clock::time_point wait_start) {
  if (finished_) return;
  const auto now = Clock::now();
  if (now - last_poll_ < kPollGap) return;
  last_poll_ = now;
  drain();
  if (now - last_sent_ >= beat_ || (dirty_ && now - last_sent_ >= kMinGap)) send_beacons();

  // The rule. Silence is counted from the start of this wait at the earliest: before it, this
  // rank did not listen.
  const auto floor = std::max(wait_start, created_);
  int worst = -1;
  Clock::duration worst_silence{};
  for (int i = 0; i < size_; ++i) {
    if (i == rank_) continue;
    const auto silence = now - std::max(peers_[i].last_heard, floor);
    if (silence > timeout_ && silence > worst_silence) {
      worst = i;
      worst_silence = silence;
    }
  }
  if (worst < 0) return;
  // One line for the job: the ranks below this one that are heard from report first.
  int before = 0;
  for (int i = 0; i < rank_; ++i)
    if (now - std::max(peers_[i].last_heard, floor) <= timeout_) ++before;
  const auto grace = std::chrono::duration_cast<Clock::duration>(
      std::chrono::duration<double>(kGraceSeconds * before));
  if (worst_silence > timeout_ + grace) report_stall(worst, seconds(worst_silence));
}

void Liveness::report_stall(int rank, double silent_s) const {
  const Peer& p = peers_[rank];
  throw StallError(fmt::format(
      "rank {} on host {} stalled: no progress for {:.1f} s ({}); its last progress: {}. The "
      "job ends; rerun the same command to resume from the checkpoint",
      rank, p.host, silent_s, rule_, p.phase));
}

void Liveness::finish() {
  if (finished_) return;
  // 1. Everyone is here (judged as any wait: a rank that stalls before its end is named).
  MPI_Request r;
  MPI_Ibarrier(comm_, &r);
  GPTQD_CHECK(mpi_wait_yielding(&r, MPI_STATUS_IGNORE) == MPI_SUCCESS,
              "the liveness barrier failed");
  // 2. No beacon is sent after this point; every rank learns how many it still has to take.
  finished_ = true;
  std::vector<int> sent(static_cast<size_t>(size_)), expect(static_cast<size_t>(size_));
  for (int i = 0; i < size_; ++i) {
    GPTQD_CHECK(peers_[i].sent < INT_MAX, "{} beacons to rank {}", peers_[i].sent, i);
    sent[i] = static_cast<int>(peers_[i].sent);
  }
  MPI_Ialltoall(sent.data(), 1, MPI_INT, expect.data(), 1, MPI_INT, comm_, &r);
  GPTQD_CHECK(mpi_wait_yielding(&r, MPI_STATUS_IGNORE) == MPI_SUCCESS,
              "exchanging the liveness beacon counts failed");
  for (int i = 0; i < size_; ++i) {
    Peer& p = peers_[i];
    for (; p.received < expect[i]; ++p.received) {
      Beacon msg;
      MPI_Request rr;
      MPI_Irecv(&msg, sizeof msg, MPI_BYTE, i, kBeaconTag, comm_, &rr);
      GPTQD_CHECK(mpi_wait_yielding(&rr, MPI_STATUS_IGNORE) == MPI_SUCCESS,
                  "receiving a liveness beacon from rank {} failed", i);
    }
  }
  for (Peer& p : peers_) {
    for (Outgoing& o : p.in_flight)
      GPTQD_CHECK(mpi_wait_yielding(&o.req, MPI_STATUS_IGNORE) == MPI_SUCCESS,
                  "a liveness beacon was not delivered");
    p.in_flight.clear();
  }
}

BlockingSection::BlockingSection(const char* what) : monitor_(g_monitor) {
  if (monitor_) monitor_->enter_blocking(what);
}

BlockingSection::~BlockingSection() {
  if (monitor_) monitor_->leave_blocking();
}

LivenessScope::LivenessScope(Liveness* monitor) : previous_(g_monitor) { g_monitor = monitor; }
LivenessScope::~LivenessScope() { g_monitor = previous_; }

Liveness* current_liveness() { return g_monitor; }

void set_progress_context(std::string context) { g_context = std::move(context); }

void report_progress(std::string_view what) {
  if (!g_monitor) return;
  g_monitor->progress(g_context.empty() ? std::string(what)
                                        : fmt::format("{}: {}", g_context, what));
}

void flush_progress() {
  if (g_monitor) g_monitor->flush();
}

}  // namespace gptqd
