// SPDX-License-Identifier: Apache-2.0
// A native target for `profkit dump`: a thread blocked on a mutex that the main thread holds.
//
//   cc -g -O0 -pthread -o hang hang.c && ./hang [SLEEPERS]
//
// The main thread takes `held_mutex`, starts thread "profkit-waiter" (blocked in
// pthread_mutex_lock, called from `wait_for_mutex`), then sits in `wait_forever`. SLEEPERS
// (default 0) more threads "profkit-sleeper" sit in `sleep_forever`: many threads make a stack
// tool take long enough to be caught attached. Prints "ready" once every thread has started
// (the caller waits for the waiter to block: its /proc state S).
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static pthread_mutex_t held_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t count_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t count_cond = PTHREAD_COND_INITIALIZER;
static int started;

static void count_started(void) {
    pthread_mutex_lock(&count_mutex);
    started++;
    pthread_cond_signal(&count_cond);
    pthread_mutex_unlock(&count_mutex);
}

__attribute__((noinline)) void wait_for_mutex(void) {
    pthread_mutex_lock(&held_mutex);
    pthread_mutex_unlock(&held_mutex);
}

static void *waiter(void *arg) {
    count_started();
    wait_for_mutex();
    return arg;
}

__attribute__((noinline)) void sleep_forever(void) {
    for (;;) pause();
}

static void *sleeper(void *arg) {
    count_started();
    sleep_forever();
    return arg;
}

__attribute__((noinline)) void wait_forever(void) {
    for (;;) pause();
}

int main(int argc, char **argv) {
    int sleepers = argc > 1 ? atoi(argv[1]) : 0;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    pthread_mutex_lock(&held_mutex);
    pthread_t t;
    pthread_create(&t, &attr, waiter, NULL);
    pthread_setname_np(t, "profkit-waiter");
    for (int i = 0; i < sleepers; i++) {
        pthread_create(&t, &attr, sleeper, NULL);
        pthread_setname_np(t, "profkit-sleeper");
    }
    pthread_mutex_lock(&count_mutex);
    while (started < sleepers + 1)
        pthread_cond_wait(&count_cond, &count_mutex);
    pthread_mutex_unlock(&count_mutex);
    printf("ready\n");
    fflush(stdout);
    wait_forever();
}
