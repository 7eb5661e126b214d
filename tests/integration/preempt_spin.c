/* preempt_spin: threads that never call anything must not starve others.
 * gmp-test: mode=selfcheck timeout=60
 *
 * 4 threads spin in pure compute loops (integer, SSE and, where the CPU
 * has it, AVX2 arithmetic with all vector registers live) while a fifth
 * sleeps 1 ms in a loop and records its worst wake-up delay. Natively the
 * kernel preempts the spinners; under a green-thread runtime with one P
 * only asynchronous preemption lets the sleeper run at all. Checks: the
 * worst delay stays under 30 ms (200 ms of slack is not allowed to hide a
 * missing preemption: without it the sleeper never wakes before the
 * spinners finish), and every spinner's result equals the same
 * computation done beforehand without interruption (a preemption that
 * lost a register, a flag or vector state would change it).
 */
#define _GNU_SOURCE
#include <immintrin.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define SPIN_ROUNDS 400000000ULL

static double ms_now(void)
{
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
}

static uint64_t spin_int(uint64_t n)
{
  uint64_t x = 88172645463325252ULL, acc = 0;
  for (uint64_t i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    acc += x >> 3;
  }
  return acc;
}

static uint64_t spin_sse(uint64_t n)
{
  double a = 1.0, b = 0.5;
  for (uint64_t i = 0; i < n / 4; i++) {
    a = a * 1.0000001 + b;
    b = b * 0.9999999 + 1e-9 * a;
  }
  uint64_t r;
  __builtin_memcpy(&r, &a, 8);
  return r ^ (uint64_t)(b * 1e6);
}

__attribute__((target("avx2"))) static uint64_t spin_avx(uint64_t n)
{
  __m256i v[12];
  for (int k = 0; k < 12; k++)
    v[k] = _mm256_set1_epi64x(k * 0x9E3779B97F4A7C15ULL + 1);
  __m256i inc = _mm256_set_epi64x(3, 5, 7, 11);
  for (uint64_t i = 0; i < n / 16; i++) {
    for (int k = 0; k < 12; k++) {
      v[k] = _mm256_add_epi64(v[k], inc);
      v[k] = _mm256_xor_si256(v[k], _mm256_srli_epi64(v[k], 9));
    }
  }
  uint64_t out[4], acc = 0;
  for (int k = 0; k < 12; k++) {
    _mm256_storeu_si256((__m256i *)out, v[k]);
    acc += out[0] ^ out[1] ^ out[2] ^ out[3];
  }
  return acc;
}

struct job {
  int kind;
  uint64_t result;
};

static atomic_int running;

static uint64_t run_kind(int kind)
{
  if (kind == 2 && __builtin_cpu_supports("avx2"))
    return spin_avx(SPIN_ROUNDS);
  return kind == 1 ? spin_sse(SPIN_ROUNDS) : spin_int(SPIN_ROUNDS / 2);
}

static void *spinner(void *arg)
{
  struct job *j = arg;
  j->result = run_kind(j->kind);
  atomic_fetch_sub(&running, 1);
  return NULL;
}

int main(void)
{
  uint64_t ref[3];
  for (int k = 0; k < 3; k++)
    ref[k] = run_kind(k);
  struct job jobs[4] = {{0, 0}, {1, 0}, {2, 0}, {2, 0}};
  pthread_t t[4];
  atomic_store(&running, 4);
  for (int i = 0; i < 4; i++)
    pthread_create(&t[i], NULL, spinner, &jobs[i]);
  double worst = 0;
  int wakeups = 0;
  while (atomic_load(&running) > 0 && wakeups < 2000) {
    double a = ms_now();
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
    double d = ms_now() - a - 1.0;
    if (d > worst)
      worst = d;
    wakeups++;
  }
  for (int i = 0; i < 4; i++)
    pthread_join(t[i], NULL);
  int ok = 1;
  for (int i = 0; i < 4; i++)
    ok &= jobs[i].result == ref[jobs[i].kind];
  printf("spinner results equal the uninterrupted computation: %s\n", ok ? "yes" : "NO");
  printf("sleeper woke %d times; worst delay %.2f ms (limit 30 ms): %s\n", wakeups, worst,
         worst < 30.0 ? "ok" : "TOO LATE");
  return ok && worst < 30.0 && wakeups > 5 ? 0 : 1;
}
