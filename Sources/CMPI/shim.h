#ifndef PATCHWORK_CMPI_SHIM_H
#define PATCHWORK_CMPI_SHIM_H
// Open MPI (Debian's libopenmpi-dev). Its handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, MPI_IN_PLACE)
// are macros over addresses of globals, which Swift cannot import; these wrappers fix the
// communicator to MPI_COMM_WORLD and each datatype/operation, so Swift sees plain functions.
// Every function returns MPI's error code (MPI_SUCCESS = 0).
#include <mpi.h>
#include <stdint.h>

static inline int pw_mpi_success(void) { return MPI_SUCCESS; }

static inline int pw_mpi_initialized(void) {
    int flag = 0;
    MPI_Initialized(&flag);
    return flag;
}

// MPI_THREAD_FUNNELED: only the thread that initialised MPI calls it (the trainer's thread);
// the data loader's producer thread never does. Errors are returned, not fatal, so a failing
// call becomes a Swift error that names the call and the ranks.
static inline int pw_mpi_init(void) {
    int provided = 0;
    int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS) return rc;
    return MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
}

static inline int pw_mpi_finalize(void) { return MPI_Finalize(); }

static inline int pw_mpi_rank(int *rank) { return MPI_Comm_rank(MPI_COMM_WORLD, rank); }
static inline int pw_mpi_size(int *size) { return MPI_Comm_size(MPI_COMM_WORLD, size); }

static inline int pw_mpi_allreduce_sum_float(float *values, int count) {
    return MPI_Allreduce(MPI_IN_PLACE, values, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
}

static inline int pw_mpi_allreduce_sum_double(double *values, int count) {
    return MPI_Allreduce(MPI_IN_PLACE, values, count, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}

static inline int pw_mpi_broadcast_float(float *values, int count, int root) {
    return MPI_Bcast(values, count, MPI_FLOAT, root, MPI_COMM_WORLD);
}

static inline int pw_mpi_broadcast_bytes(void *bytes, int count, int root) {
    return MPI_Bcast(bytes, count, MPI_BYTE, root, MPI_COMM_WORLD);
}

static inline int pw_mpi_allgather_uint64(uint64_t value, uint64_t *all) {
    return MPI_Allgather(&value, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, MPI_COMM_WORLD);
}

static inline int pw_mpi_barrier(void) { return MPI_Barrier(MPI_COMM_WORLD); }

static inline int pw_mpi_abort(int code) { return MPI_Abort(MPI_COMM_WORLD, code); }

static inline void pw_mpi_error_string(int code, char *buffer, int capacity) {
    int length = 0;
    if (capacity < MPI_MAX_ERROR_STRING || MPI_Error_string(code, buffer, &length) != MPI_SUCCESS) length = 0;
    buffer[length] = 0;
}

static inline int pw_mpi_max_error_string(void) { return MPI_MAX_ERROR_STRING; }

#endif
