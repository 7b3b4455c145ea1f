/*
 * grpc_methods.h - every gRPC method sfpd serves, one row each. The server
 * (grpc_server.c: routing, authorization, dispatch), the request checker
 * (grpc_req.c: descriptor and validation) and the fuzz targets
 * (tests/fuzz_grpc/, one per row with a corpus of its own, checked by
 * test_grpc_req) are all made from this table: a method is one row here,
 * its check_<name> in grpc_req.c and its handler in grpc_server.c or
 * grpc_peer.c (docs/DAEMON.md "Adding a gRPC method").
 *
 * X(ID, path, request, auth, kind, name)
 *   request  protobuf-c type stem of the request (request##__descriptor)
 *   auth     OPEN  anyone who reaches the port
 *            ADMIN the admin token, when admin_token_file is set
 *            PEER  the peer token; served only with peering = 1
 *   kind     UNARY one reply (handler do_<name>), STREAM a server stream
 *            (handler start_<name>)
 *   name     the method in code: handler, check_<name>, fuzz_grpc_<name>
 */
#ifndef SFPD_EDGES_GRPC_METHODS_H
#define SFPD_EDGES_GRPC_METHODS_H

#define SFPD_GRPC_METHODS(X)                                                                       \
    X(GET_STATS,    "/sfp.v1.Stats/GetStats",       sfp__v1__get_stats_request,    OPEN,  UNARY,  get_stats)    \
    X(WATCH_STATS,  "/sfp.v1.Stats/WatchStats",     sfp__v1__watch_stats_request,  OPEN,  STREAM, watch_stats)  \
    X(LIST_TENSORS, "/sfp.v1.Stats/ListTensors",    sfp__v1__list_tensors_request, OPEN,  UNARY,  list_tensors) \
    X(GET_POLICY,   "/sfp.v1.Control/GetPolicy",    sfp__v1__get_policy_request,   OPEN,  UNARY,  get_policy)   \
    X(SET_POLICY,   "/sfp.v1.Control/SetPolicy",    sfp__v1__set_policy_request,   ADMIN, UNARY,  set_policy)   \
    X(END_JOB,      "/sfp.v1.Control/EndJob",       sfp__v1__end_job_request,      ADMIN, UNARY,  end_job)      \
    X(HEALTH_CHECK, "/grpc.health.v1.Health/Check", grpc__health__v1__health_check_request, OPEN, UNARY, health_check) \
    X(PUT_FRAME,    "/sfp.v1.Peer/PutFrame",        sfp__v1__put_frame_request,    PEER,  UNARY,  put_frame)    \
    X(GET_FRAME,    "/sfp.v1.Peer/GetFrame",        sfp__v1__get_frame_request,    PEER,  UNARY,  get_frame)    \
    X(DROP_FRAME,   "/sfp.v1.Peer/DropFrame",       sfp__v1__drop_frame_request,   PEER,  UNARY,  drop_frame)   \
    X(CAPACITY,     "/sfp.v1.Peer/Capacity",        sfp__v1__capacity_request,     PEER,  UNARY,  capacity)

typedef enum sfpd_grpc_method {
#define SFPD__M_ENUM(id, path, req, auth, kind, name) SFPD_M_##id,
    SFPD_GRPC_METHODS(SFPD__M_ENUM)
#undef SFPD__M_ENUM
    SFPD_M_COUNT
} sfpd_grpc_method;

typedef enum sfpd_grpc_auth {
    SFPD_AUTH_OPEN,
    SFPD_AUTH_ADMIN,
    SFPD_AUTH_PEER,
} sfpd_grpc_auth;

#endif /* SFPD_EDGES_GRPC_METHODS_H */
