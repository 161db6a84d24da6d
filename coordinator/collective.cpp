#include "coordinator/collective.h"

#include <climits>
#include <new>

#include "base/check.h"
#include "base/log.h"
#include "worker/transport/liveness.h"
#include "worker/transport/transport.h"

namespace gptqd {
namespace {

// Every collective of the job's own agreements is started nonblocking and waited for by
// mpi_wait_yielding: a rank that waits for a late or stopped one sleeps instead of spinning,
// and the liveness rule (worker/transport/liveness.h) ends the job when a rank stalls.
void wait(MPI_Request* r, const char* what) {
  const int rc = mpi_wait_yielding(r, MPI_STATUS_IGNORE);
  GPTQD_CHECK(rc == MPI_SUCCESS, "{} failed (MPI error {})", what, rc);
}

void bcast(void* data, int count, MPI_Datatype type, int root, MPI_Comm comm) {
  MPI_Request r;
  MPI_Ibcast(data, count, type, root, comm, &r);
  wait(&r, "MPI_Ibcast");
}

}  // namespace

std::string error_message(const std::exception& e) {
  if (dynamic_cast<const std::bad_alloc*>(&e)) {
    return fmt::format(
        "out of memory: an allocation failed ({}); `gptqd plan CONFIG` shows the "
        "memory a job needs per rank",
        e.what());
  }
  return e.what();
}

bool collective_try(MPI_Comm comm, const std::function<void()>& fn) {
  int rank = 0, world = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &world);
  std::string message;
  try {
    fn();
  } catch (const StallError&) {
    throw;  // the stalled rank would never join the agreement below
  } catch (const std::exception& e) {
    message = error_message(e);
  }
  const int mine = message.empty() ? INT_MAX : rank;
  int first = INT_MAX;
  allreduce_polled(&mine, &first, 1, MPI_INT, MPI_MIN, comm);
  if (first == INT_MAX) return true;
  if (rank == first) GPTQD_LOG_ERROR("error: {}", message);
  return false;
}

void broadcast(MPI_Comm comm, int root, std::vector<int32_t>* v) {
  int64_t n = static_cast<int64_t>(v->size());
  bcast(&n, 1, MPI_INT64_T, root, comm);
  v->resize(static_cast<size_t>(n));
  GPTQD_CHECK(n < INT_MAX, "broadcast of {} ints exceeds one MPI message", n);
  bcast(v->data(), static_cast<int>(n), MPI_INT32_T, root, comm);
}

void broadcast(MPI_Comm comm, int root, std::string* s) {
  int64_t n = static_cast<int64_t>(s->size());
  bcast(&n, 1, MPI_INT64_T, root, comm);
  s->resize(static_cast<size_t>(n));
  GPTQD_CHECK(n < INT_MAX, "broadcast of {} bytes exceeds one MPI message", n);
  bcast(s->data(), static_cast<int>(n), MPI_CHAR, root, comm);
}

void broadcast(MPI_Comm comm, int root, bool* b) {
  int v = *b ? 1 : 0;
  bcast(&v, 1, MPI_INT, root, comm);
  *b = v != 0;
}

void yielding_barrier(MPI_Comm comm) {
  MPI_Request r;
  GPTQD_CHECK(MPI_Ibarrier(comm, &r) == MPI_SUCCESS, "MPI barrier failed");
  wait(&r, "MPI barrier");
}

void allreduce_polled(const void* send, void* recv, int count, MPI_Datatype type, MPI_Op op,
                      MPI_Comm comm) {
  MPI_Request r;
  GPTQD_CHECK(MPI_Iallreduce(send, recv, count, type, op, comm, &r) == MPI_SUCCESS,
              "MPI_Iallreduce failed");
  wait(&r, "MPI_Iallreduce");
}

int local_rank_count(MPI_Comm comm) {
  MPI_Comm node;
  MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node);
  int n = 1;
  MPI_Comm_size(node, &n);
  MPI_Comm_free(&node);
  return n;
}

}  // namespace gptqd
