/* gen_ipc_corpus: writes the seed corpus of fuzz_ipc into the directory argv[1]. */
#include "sfp/ipc/v1/ipc.pb-c.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static FILE *out;

static void emit_req(Sfp__Ipc__V1__Request *rq)
{
    size_t n = sfp__ipc__v1__request__get_packed_size(rq);
    unsigned char *b = malloc(n + 4);
    b[0] = (unsigned char)n, b[1] = (unsigned char)(n >> 8), b[2] = (unsigned char)(n >> 16),
    b[3] = (unsigned char)(n >> 24);
    sfp__ipc__v1__request__pack(rq, b + 4);
    fwrite(b, 1, n + 4, out);
    free(b);
}

static void open_file(const char *dir, const char *name)
{
    char path[512];
    if (out)
        fclose(out);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    out = fopen(path, "wb");
    if (!out) {
        perror(path);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    Sfp__Ipc__V1__Request rq = SFP__IPC__V1__REQUEST__INIT;
    Sfp__Ipc__V1__Hello h = SFP__IPC__V1__HELLO__INIT;
    Sfp__Ipc__V1__Put put = SFP__IPC__V1__PUT__INIT;
    Sfp__Ipc__V1__Get get = SFP__IPC__V1__GET__INIT;
    Sfp__Ipc__V1__Drop drop = SFP__IPC__V1__DROP__INIT;
    Sfp__Ipc__V1__Prefetch pf = SFP__IPC__V1__PREFETCH__INIT;
    Sfp__Ipc__V1__Encode en = SFP__IPC__V1__ENCODE__INIT;
    Sfp__Ipc__V1__Decode de = SFP__IPC__V1__DECODE__INIT;
    Sfp__Ipc__V1__EndJob ej = SFP__IPC__V1__END_JOB__INIT;
    Sfp__Ipc__V1__StatsRequest sr = SFP__IPC__V1__STATS_REQUEST__INIT;
    Sfp__Ipc__V1__PutFrame pfr = SFP__IPC__V1__PUT_FRAME__INIT;
    Sfp__Ipc__V1__GetFrame gfr = SFP__IPC__V1__GET_FRAME__INIT;
    Sfp__Ipc__V1__Key k = SFP__IPC__V1__KEY__INIT;
    Sfp__Ipc__V1__Params p = SFP__IPC__V1__PARAMS__INIT;
    const char *dir = argc > 1 ? argv[1] : ".";

    h.version = 1, h.job_id = (char *)"job-1", h.rank = 2, h.client_name = (char *)"gen", h.shm_size = 1 << 20;
    k.rank = 2, k.step = 10, k.tensor = (char *)"layer3.out";
    p.dtype = 1, p.mbits = 7, p.ebits = 5, p.anchor = -1, p.coder = 1, p.gecko_group = 16;
    put.key = &k, put.offset = 4096, put.count = 1024, put.length = 4096, put.params = &p;
    get.key = &k, get.offset = 8192, get.capacity = 4096, get.drop = 1;
    drop.key = &k;
    pf.depth = 4;
    en.offset = 0, en.length = 4096, en.count = 1024, en.params = &p, en.out_offset = 8192, en.out_capacity = 8192;
    de.offset = 8192, de.length = 3000, de.out_offset = 0, de.out_capacity = 4096;

    open_file(dir, "hello");
    rq.id = 1, rq.body_case = SFP__IPC__V1__REQUEST__BODY_HELLO, rq.hello = &h;
    emit_req(&rq);
    open_file(dir, "session");
    emit_req(&rq);
    rq.id = 2, rq.body_case = SFP__IPC__V1__REQUEST__BODY_PUT, rq.put = &put;
    emit_req(&rq);
    rq.id = 3, rq.body_case = SFP__IPC__V1__REQUEST__BODY_PREFETCH, rq.prefetch = &pf;
    emit_req(&rq);
    rq.id = 4, rq.body_case = SFP__IPC__V1__REQUEST__BODY_GET, rq.get = &get;
    emit_req(&rq);
    rq.id = 5, rq.body_case = SFP__IPC__V1__REQUEST__BODY_DROP, rq.drop = &drop;
    emit_req(&rq);
    rq.id = 6, rq.body_case = SFP__IPC__V1__REQUEST__BODY_ENCODE, rq.encode = &en;
    emit_req(&rq);
    rq.id = 7, rq.body_case = SFP__IPC__V1__REQUEST__BODY_DECODE, rq.decode = &de;
    emit_req(&rq);
    rq.id = 8, rq.body_case = SFP__IPC__V1__REQUEST__BODY_STATS, rq.stats = &sr;
    emit_req(&rq);
    rq.id = 9, rq.body_case = SFP__IPC__V1__REQUEST__BODY_END_JOB, rq.end_job = &ej;
    emit_req(&rq);
    open_file(dir, "frames");
    pfr.key = &k, pfr.offset = 4096, pfr.length = 700;
    gfr.key = &k, gfr.offset = 8192, gfr.capacity = 4096, gfr.drop = 1;
    rq.id = 1, rq.body_case = SFP__IPC__V1__REQUEST__BODY_HELLO, rq.hello = &h;
    emit_req(&rq);
    rq.id = 20, rq.body_case = SFP__IPC__V1__REQUEST__BODY_PUT_FRAME, rq.put_frame = &pfr;
    emit_req(&rq);
    rq.id = 21, rq.body_case = SFP__IPC__V1__REQUEST__BODY_GET_FRAME, rq.get_frame = &gfr;
    emit_req(&rq);
    open_file(dir, "put_frame_no_key");
    pfr.key = NULL;
    rq.id = 22, rq.body_case = SFP__IPC__V1__REQUEST__BODY_PUT_FRAME, rq.put_frame = &pfr;
    emit_req(&rq);
    open_file(dir, "get_frame_huge");
    gfr.offset = UINT64_MAX - 8, gfr.capacity = UINT64_MAX;
    rq.id = 23, rq.body_case = SFP__IPC__V1__REQUEST__BODY_GET_FRAME, rq.get_frame = &gfr;
    emit_req(&rq);
    open_file(dir, "put_bf16");
    p.dtype = 2, put.length = 2048;
    rq.id = 11, rq.body_case = SFP__IPC__V1__REQUEST__BODY_PUT, rq.put = &put;
    emit_req(&rq);
    open_file(dir, "put_bad_length");
    put.length = 4095;
    emit_req(&rq);
    open_file(dir, "hello_bad_version");
    h.version = 99;
    rq.id = 12, rq.body_case = SFP__IPC__V1__REQUEST__BODY_HELLO, rq.hello = &h;
    emit_req(&rq);
    open_file(dir, "empty_request");
    rq.body_case = SFP__IPC__V1__REQUEST__BODY__NOT_SET;
    emit_req(&rq);
    open_file(dir, "unknown_type");
    fwrite("\x07\x00\x00\x00\x08\x05\x90\x03\x01\x08\x06", 1, 11, out);
    open_file(dir, "huge_prefix");
    fwrite("\xff\xff\xff\xff\x08\x01", 1, 6, out);
    open_file(dir, "truncated");
    fwrite("\x40\x00\x00\x00\x08\x01\x12\x05", 1, 8, out);
    open_file(dir, "garbage");
    fwrite("\x08\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\xff", 1, 12, out);
    fclose(out);
    return 0;
}
