// Helpers for running a step on every rank so that an error on any rank ends the
// step on all of them with one clear message, never a rank waiting in a collective.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <exception>
#include <functional>
#include <string>
#include <vector>

namespace gptqd {

// Runs fn on every rank of comm (collective). If it throws anywhere, the lowest
// failing rank logs "error: <what>" and every rank gets false. A StallError (a stalled rank
// found by the liveness rule, worker/transport/liveness.h) is not agreed on: it propagates.
bool collective_try(MPI_Comm comm, const std::function<void()>& fn);

// What an error line says for e: its what(), or for an exception the standard library throws
// with a bare name (std::bad_alloc: "std::bad_alloc") a sentence saying what happened. The
// sites that can run out of memory on a user's setting check it before work and name the key;
// this is what the rest show.
std::string error_message(const std::exception& e);

void broadcast(MPI_Comm comm, int root, std::vector<int32_t>* v);
void broadcast(MPI_Comm comm, int root, std::string* s);
void broadcast(MPI_Comm comm, int root, bool* b);

// The broadcasts above, the agreement of collective_try and these two are nonblocking
// collectives waited for by mpi_wait_yielding (worker/transport/transport.h): a rank that waits
// for another (a later stage, a late or stopped rank) sleeps instead of keeping a core busy, and
// the job's liveness rule applies while it waits (throws StallError).
// MPI_Barrier: for ranks that finished their stage and wait for the later stages.
void yielding_barrier(MPI_Comm comm);
// MPI_Allreduce.
void allreduce_polled(const void* send, void* recv, int count, MPI_Datatype type, MPI_Op op,
                      MPI_Comm comm);

// Ranks on this node, from MPI_COMM_TYPE_SHARED (the local rank count).
int local_rank_count(MPI_Comm comm);

}  // namespace gptqd
