/* wcheck.h - minimal assertions for the worker unit tests. */
#ifndef SFPW_WCHECK_H
#define SFPW_WCHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int wcheck_failures;

#define CHECK(cond) do { if (!(cond)) { \
    fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
    wcheck_failures++; } } while (0)

#define CHECK_EQ_INT(a, b) do { long long a_ = (long long)(a), b_ = (long long)(b); \
    if (a_ != b_) { fprintf(stderr, "%s:%d: %s == %lld, expected %s == %lld\n", \
        __FILE__, __LINE__, #a, a_, #b, b_); wcheck_failures++; } } while (0)

#define CHECK_NEAR(a, b, tol) do { double a_ = (a), b_ = (b); \
    if (!(fabs(a_ - b_) <= (tol))) { fprintf(stderr, "%s:%d: %s = %.9g, expected %.9g (tol %g)\n", \
        __FILE__, __LINE__, #a, a_, b_, (double)(tol)); wcheck_failures++; } } while (0)

#define WCHECK_DONE() do { if (wcheck_failures) { \
    fprintf(stderr, "%d check(s) failed\n", wcheck_failures); return 1; } \
    printf("ok\n"); return 0; } while (0)

#endif
