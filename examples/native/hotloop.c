/* SPDX-License-Identifier: Apache-2.0
 * hotloop: a small native program with known hot functions, for perf-based profiling.
 * Build: cc -O2 -g -fno-omit-frame-pointer -o hotloop hotloop.c
 * Run:   ./hotloop [seconds]   (default: 10; 0 = forever)
 * Where the time goes, by design: checksum_block (through mix) and sort_records (shell_sort)
 * carry almost all of it, format_report a little; main -> handle_batch is the only path.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile uint64_t sink;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

__attribute__((noinline)) static uint64_t mix(uint64_t x) {
    x ^= x >> 33; x *= 0xff51afd7ed558ccdULL; x ^= x >> 33;
    return x;
}

__attribute__((noinline)) static uint64_t checksum_block(const uint8_t *buf, size_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = mix(h ^ buf[i]);
    return h;
}

/* Our own shell sort: libc's qsort is built without frame pointers, which breaks perf -g stacks. */
__attribute__((noinline)) static void shell_sort(uint32_t *v, size_t n) {
    static const size_t gaps[] = {701, 301, 132, 57, 23, 10, 4, 1};
    for (size_t g = 0; g < sizeof gaps / sizeof *gaps; g++) {
        size_t gap = gaps[g];
        for (size_t i = gap; i < n; i++) {
            uint32_t t = v[i];
            size_t j = i;
            for (; j >= gap && v[j - gap] > t; j -= gap) v[j] = v[j - gap];
            v[j] = t;
        }
    }
}

__attribute__((noinline)) static void sort_records(uint32_t *v, size_t n, uint64_t seed) {
    for (size_t i = 0; i < n; i++) { seed = mix(seed + i); v[i] = (uint32_t)seed; }
    shell_sort(v, n);
}

__attribute__((noinline)) static void format_report(char *out, size_t cap, const uint32_t *v, size_t n) {
    size_t pos = 0;
    for (size_t i = 0; i < n && pos + 16 < cap; i += 7) pos += (size_t)snprintf(out + pos, cap - pos, "%u,", v[i]);
}

/* Each call does the three phases with work sized to the intended time split. */
__attribute__((noinline)) static void handle_batch(uint8_t *buf, uint32_t *v, char *out, uint64_t round) {
    for (int k = 0; k < 6; k++) sink += checksum_block(buf, 1 << 16);
    sort_records(v, 1 << 14, round);
    format_report(out, 1 << 16, v, 1 << 14);
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 10.0;
    uint8_t *buf = malloc(1 << 16);
    uint32_t *v = malloc(sizeof(uint32_t) << 14);
    char *out = malloc(1 << 16);
    if (!buf || !v || !out) return 1;
    memset(buf, 7, 1 << 16);
    double end = now() + seconds;
    for (uint64_t round = 0; seconds <= 0 || now() < end; round++) handle_batch(buf, v, out, round);
    printf("%llu\n", (unsigned long long)sink);
    return 0;
}
