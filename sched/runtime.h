/*
 * The runtime's types: G, M, P and the scheduler's global state, in the
 * manner of Go's runtime2.go. Internal to sched/ (and its unit tests);
 * preload/ uses sched/sched.h only.
 *
 *  G  a green thread: a stack, a TCB (its own errno, TLS, pthread_self),
 *     a saved context, and what it waits for.
 *  M  an OS thread (a real NPTL pthread) that runs Gs. Its own stack and
 *     TCB form "g0", where the scheduler runs between two Gs.
 *  P  a processor: the right to run Gs, with a local run queue, timers and
 *     a cache of free Gs. GMP_MAXPROCS of them; an M needs a P to run a G.
 */
#ifndef GMP_SCHED_RUNTIME_H
#define GMP_SCHED_RUNTIME_H

#include <stdatomic.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>

#include "sched/lock.h"
#include "shim/shim.h"

struct g;
struct m;
struct p;

/* ---- run queue (runq.c) ---------------------------------------------- */

/* 256 slots: big enough that a burst of readies rarely spills to the
 * global queue, small enough that stealing half stays cheap (Go's size). */
#define RUNQ_SIZE 256

/* A single-producer, multi-consumer ring. Only the owning P writes tail
 * and the slots; anyone may advance head with a CAS (get or steal). Slots
 * are read before the CAS that claims them, so a stealer may read a slot
 * the owner is overwriting: the CAS then fails and the read is discarded.
 * That is why slots are atomics (relaxed) and head/tail acquire/release. */
struct runq {
  _Atomic uint32_t head;
  _Atomic uint32_t tail;
  _Atomic(struct g *) slot[RUNQ_SIZE];
  /* runnext: the G readied by the running G runs next, ahead of the queue,
   * inheriting the time slice. A ping-pong pair then stays on one P. */
  _Atomic(struct g *) next;
};

void runq_init(struct runq *q);
uint32_t runq_size(struct runq *q);
bool runq_empty(struct runq *q);
/* Owner only. false when the ring is full (caller spills half, runq_put_slow). */
bool runq_put(struct runq *q, struct g *g);
/* Owner only: install g as runnext; returns the G it displaced (or NULL). */
struct g *runq_put_next(struct runq *q, struct g *g);
/* Owner only. Takes runnext first, then the head of the ring. */
struct g *runq_get(struct runq *q, bool *inherit);
/* Owner only: move half the ring into batch[0..n) (to spill to the global
 * queue). Returns n, or 0 if a concurrent steal raced (retry runq_put). */
uint32_t runq_take_half(struct runq *q, uint32_t h, uint32_t t, struct g **batch);
/* Steal half of src into dst (dst's owner calls). Returns one G to run. */
struct g *runq_steal(struct runq *dst, struct runq *src, bool steal_next);

/* ---- parking lot (parklot.c) ------------------------------------------ */

/* Address-keyed wait queues, the one primitive under mutex, cond, rwlock,
 * sem, barrier, join and once (Go's sema.go keeps a treap per address; a
 * hashed bucket with a FIFO list is enough when few addresses collide). */
struct pl_waiter {
  const void *addr;
  struct pl_waiter *next, *prev;
  bool queued;
};

/* Prime (addresses are 8- or 16-aligned). A C10K server parks one thread
 * per connection: with 10,000 waiters a bucket holds less than one on
 * average, where 1021 buckets made pl_dequeue's list walk (a cache miss
 * per waiter) 8% of the server's CPU. 1 MiB of address space; only the
 * buckets used are ever touched. */
#define PL_BUCKETS 16381

struct pl_bucket {
  gmp_spin lock;
  struct pl_waiter *head, *tail;
  uint32_t count;
} __attribute__((aligned(64)));

struct pl_bucket *pl_bucket_of(const void *addr);
void pl_enqueue(struct pl_bucket *b, struct pl_waiter *w, const void *addr);
/* Dequeue the oldest waiter on addr, or NULL. Bucket locked. */
struct pl_waiter *pl_dequeue(struct pl_bucket *b, const void *addr);
/* Unlink a specific waiter if still queued; true if it was. */
bool pl_remove(struct pl_bucket *b, struct pl_waiter *w);
/* Is any waiter queued on addr? Bucket locked. */
bool pl_has_waiters(struct pl_bucket *b, const void *addr);
/* Empty every queue and free every lock (fork child: the waiters are gone). */
void pl_reset_all(void);

/* ---- timer heap (timerheap.c) ----------------------------------------- */

struct gtimer {
  int64_t when;        /* monotonic ns; valid while in a heap */
  int32_t idx;         /* position in the heap, -1 when not in one */
  struct p *p;         /* the P whose heap holds it, NULL when not armed */
  struct g *g;         /* the G to wake */
  uint64_t seq;        /* the G's park_seq when armed (stale-fire check) */
};

/* Each slot holds its timer's `when` as well: sifting compares slots of
 * one array instead of chasing a pointer into a G per comparison (10,000
 * sleepers: 13 levels x 2 cache misses per pop made the pop ~11% of the
 * sleep storm). 4-ary (Go's timer heap too): half the depth of a binary
 * one, and the 4 children of a slot share one or two cache lines. */
struct theap_slot {
  int64_t when;
  struct gtimer *t;
};
struct timerheap {
  struct theap_slot *a;
  int32_t n, cap;
};
#define TH_ARITY 4

bool th_push(struct timerheap *h, struct gtimer *t); /* false: out of memory */
struct gtimer *th_min(struct timerheap *h);
struct gtimer *th_pop(struct timerheap *h);
void th_remove(struct timerheap *h, struct gtimer *t);
void th_free(struct timerheap *h);

/* ---- G ---------------------------------------------------------------- */

enum gstatus {
  G_IDLE,     /* on a free list */
  G_RUNNABLE, /* on a run queue */
  G_RUNNING,  /* on an M */
  G_WAITING,  /* parked */
  G_DEAD,     /* exited, waiting to be joined or recycled */
};

enum waitreason {
  WAIT_NONE,
  WAIT_MUTEX,
  WAIT_COND,
  WAIT_RWLOCK,
  WAIT_SEM,
  WAIT_BARRIER,
  WAIT_JOIN,
  WAIT_SLEEP,
  WAIT_ONCE,
  WAIT_OTHER,
  WAIT_IOR,   /* GMP_WAIT_IOR: input on fd wait_fd */
  WAIT_IOW,   /* GMP_WAIT_IOW */
  WAIT_FUTEX, /* GMP_WAIT_FUTEX: a raw futex wait (preload/futex.c) */
  WAIT__COUNT
};

/* joinstate: who frees a dead G. Exactly one of the exiting G's g0 and
 * pthread_join/pthread_detach sees the other's mark and frees it. */
enum { JOIN_JOINABLE, JOIN_DETACHED, JOIN_EXITED, JOIN_JOINING };

/* park results: see GMP_PARK_* in sched.h */

#define GMP_MAX_NAME 16 /* GMP_MAX_NAME_LEN in sched.h */
#define GMP_TSD_L1 32 /* second-level TSD blocks of 32 keys: 1024 keys */

struct tsd_slot {
  uint64_t seq;
  void *data;
};

struct g {
  struct gmp_ctx ctx;      /* saved rsp + the TCB loaded when resumed */
  /* A G not yet run has ctx.rsp == NULL: execute() builds its first
   * frame (gmp_ctx_make_boot) with the floating-point control state its
   * creator had (POSIX: a new thread inherits it), so that creating a G
   * does not touch its stack. */
  uint32_t start_mxcsr;
  uint16_t start_fcw;
  uint64_t goid;
  _Atomic int status;      /* enum gstatus */
  int waitreason;
  struct m *m;             /* the M running it, when G_RUNNING */
  struct g *schedlink;     /* run queue / free list link */
  /* On the global free list, the first G of each batch links the next
   * batch and says how many Gs its own schedlink chain holds. */
  struct g *gfnext;
  int32_t gfn;
  void *tcb;               /* its thread pointer == its pthread_t */
  void *tls_block;         /* memory holding the TCB (NULL for main) */
  int tid;                 /* unique fake tid (glibc mutex owner id) */
  bool is_main;
  bool is_g0;              /* an M's scheduler context, not a program thread */
  struct gmp_stack stack;

  void *(*fn)(void *);
  void *arg;
  void *retval;
  _Atomic int joinstate;

  /* Parking. park_seq counts parks; park_state is (seq << 1) | 1 while a
   * park can still be ended, and whoever CASes the low bit to 0 (a waker
   * or the timeout) readies the G. Timers remember the seq they were
   * armed for, so a late fire can never end a later park. */
  struct pl_waiter wait;
  uint64_t park_seq;
  _Atomic uint64_t park_state;
  int park_result;
  struct gtimer timer;
  bool park_cancelpt;      /* this park is a cancellation point */
  int wait_fd;             /* the fd of a WAIT_IOR/WAIT_IOW park */

  /* Cancellation (pthread_cancel): pending is set by the canceller and
   * read by the G at its cancellation points; see park.c for the pairing
   * with park_state that makes a parked G see it. */
  _Atomic int cancel_pending;
  bool cancel_disabled;
  bool cancel_async;

  /* Thread-specific data (pthread_key_*), second level allocated lazily. */
  struct tsd_slot tsd0[GMP_TSD_L1];
  struct tsd_slot *tsd[GMP_TSD_L1];
  bool tsd_used;           /* a value may be set: destructors to run */
  bool tsd_dirty;          /* slots to clear before reuse */

  /* The thread's signal mask (the kernel's 64-bit set): the program's
   * view, and what is applied to the OS thread while it runs (the same,
   * minus the runtime's SIGURG, which the program cannot block). */
  uint64_t sigmask, sigmask_eff;
  /* Signals sent to this thread (pthread_kill, or a process-directed
   * signal sysmon found no running thread for) and not yet delivered:
   * delivered in the G's own context, on the OS thread running it, as
   * soon as it runs with them unblocked (signal.c). siginfo holds their
   * siginfo_t (64 of them, allocated by the first sender). last_sig: the
   * last one delivered, so an interrupted call knows whether SA_RESTART
   * applies. */
  _Atomic uint64_t sigpend;
  _Atomic(void *) siginfo;
  int last_sig;
  /* Of sigpend, those sent to the process that the runtime gave to this
   * thread (gmp_sig_on_g0, sysmon's rescue): if the thread ends before it
   * takes them they go back to the process, where the kernel would have
   * kept them for another thread; a signal sent to the thread itself dies
   * with it, as natively. */
  _Atomic uint64_t sigpend_proc;
  /* Real-time signals queue: how many instances of each (32..64) are
   * pending in this thread. The sigpend bit is set after a count goes up
   * and cleared before it is taken, so it may be set with a count of 0
   * (nothing to deliver), never clear with a count above 0 for long. */
  _Atomic uint16_t rt_count[33];
  /* A runtime SIGURG interrupted a system call of this G (EINTR): the
   * call is restarted as SA_RESTART would, unless a signal of the
   * program's delivered with it has a handler without SA_RESTART (then 2:
   * the EINTR is the program's). Kept on the G, not its M: exitsyscall
   * may resume the G on another M before the wrapper looks. */
  _Atomic int urg_eintr;
  /* The signals this G waits for although it blocks them (0: none): in
   * sigwait/sigwaitinfo/sigtimedwait, or reading or polling a signalfd
   * (preload/signalfd.c). A signal queued for the G (rule 3 in signal.c)
   * would otherwise wait until the G unblocks it: the queuer ends the
   * G's park (park.c ends one too if such a signal is already queued),
   * or kicks its M: the sigwait, which takes the runtime's SIGURG too,
   * comes back to look at the queue. */
  _Atomic uint64_t sigwait_set;

  char name[GMP_MAX_NAME];
  /* Scheduling attributes are recorded and reported, not enforced: all
   * Gs share the Ps fairly (documented in docs/pthread-symbols.md). */
  int sched_policy, sched_priority, inheritsched, scope;
  size_t guardsize;

  /* Observability (trace.c, dump.c). wait_since: when the current park
   * began, on sysmon's coarse clock (gmp_coarse_now: no clock read on the
   * park path). runnable_since: when a sampled readying made it runnable
   * (one in 8, counted by nready), 0 if not sampled; execute() turns it
   * into the P's scheduling-latency histogram. */
  int64_t wait_since;
  int64_t runnable_since;
  /* CPU-time clock (once the program asked for one, gmp_cpuclock_on):
   * the time this G has run on an OS thread, cpu_ns up to the start of
   * its current run, run_start (0: not running, or in a system call). */
  int64_t cpu_ns;
  int64_t run_start;
  uint32_t nready;
  /* GMP_TRACE only (traceev.c): the current run's start and P, the
   * current system call's start, and whether the run ends by preemption. */
  int64_t run_since, sys_since;
  int run_p;
  bool preempted;
  const char *sysname;     /* the blocking call it is in (entersyscall_as) */
  _Atomic bool insyscall;  /* between entersyscall and exitsyscall */
  /* Set by the preemption handler when it found this G hogging its P but
   * could not switch it where it stood (in libc, ld.so, the vDSO or
   * libgmp itself): the G yields at its next safe point of its own, the
   * return of a system-call wrapper (gmp_preempt_point), as Go's
   * goroutines do on leaving a system call. Only the G's own OS thread
   * writes it (the handler interrupts the G); execute() clears it, so a
   * request never outlives the run slice it was made for. */
  _Atomic bool preempt_coop;
};

/* ---- M ---------------------------------------------------------------- */

enum { MREQ_NONE, MREQ_PARK, MREQ_YIELD, MREQ_EXIT, MREQ_SYSCALL_EXIT };

struct m {
  int id;
  int ostid;               /* the kernel tid */
  struct gmp_ctx g0;       /* the scheduler context of this M */
  struct g *curg;
  struct p *p;             /* attached P, NULL when idle */
  struct p *nextp;         /* P handed over by startm */
  bool spinning;           /* looking for work without having found it */
  _Atomic uint32_t note;   /* futex word the idle M sleeps on */
  struct m *schedlink;     /* idle list, or the list of ended Ms */
  struct m *alllink;
  /* An M made by newm runs its g0 on its NPTL thread's own stack, which
   * it can leave: after IDLE_M_NS on the idle list it ends its thread
   * (stopm longjmps to mstart_thread, which returns). The struct stays on
   * allm (lock-free walkers: schedtrace, the trace, stats) with ended set
   * and goes to gmp_sched.mdead for the next newm to reuse, with its id. */
  bool can_end, ended;
  jmp_buf end_jb;
  struct g *g0g;           /* its g0, kept for a reuse */
  /* A request from the G that just switched to g0 (Go's mcall). */
  int req;
  /* Direct switch (mcall_held): the G that switched straight to curg
   * without going through g0, whose request curg completes when it
   * resumes; and a G taken from the run queue for g0 to run next. */
  struct g *prevg;
  struct g *nextg;
  /* The G about to run came from runnext: it inherits the time slice. */
  bool inherit;
  /* curg is finishing prevg's request (resumed), with the P held. */
  bool finishing;
  bool (*unlockf)(struct g *, void *);
  void *unlockarg;
  uint64_t rand;
  void *g0_stack;          /* M0 only: g0 runs on a runtime stack */

  /* Asynchronous preemption (preempt.c). sysmon sets preempt_tick to the
   * P's schedtick it saw, then preempt_req, then signals; the handler acts
   * only if the P is still on that tick (else the G it meant to stop has
   * already yielded: a stale request, dropped). */
  _Atomic int preempt_req;
  uint64_t preempt_tick;
  uintptr_t preempt_rip;   /* the interrupted pc, for the trampoline */
  _Atomic int in_preempt;  /* injected, not yet resumed: no second one */
  uint64_t n_preempt;
  uint64_t cur_mask;       /* the signal mask applied to this OS thread */
  /* GMP_TRACE: when this M's last run ended, and whether the next G came
   * straight from the local queue (then its run starts there: one clock
   * read per switch instead of two; the ~50 ns of scheduler work between
   * two runs is counted in the next one). */
  int64_t tev_last;
  bool tev_quick;
  int tev_last_p;   /* the P whose run slice ended at tev_last */
  /* GMP_TRACE: when sysmon handed this M's P to another M while the M
   * was blocked (tev clock; 0: not since the M last looked). The M's run
   * slice on that P ended then, not when the M finds out. */
  _Atomic int64_t p_lost_tev;
  /* GMP_TRACE: where this M's next record goes and where its buffer ends
   * (traceev.c; the fast path is inline in internal.h), and the time its
   * records' deltas count from (TEV_NOBASE: none yet in this buffer). */
  uint64_t *tev_pos, *tev_end;
  uint64_t tev_base;
  /* The TCB glibc lists this OS thread by (its set*id broadcast signals
   * each listed thread, and skips the caller's THREAD_SELF): its g0's
   * for an M made by pthread_create, the process's first TCB (the main
   * G's) for M0, and in a fork child the TCB of the G that forked. */
  void *listed_tcb;
};

/* ---- P ---------------------------------------------------------------- */

/* Per-P counters. Only the M that owns the P writes them (PSTAT_ADD in
 * internal.h: a plain load and store, no locked instruction on the
 * switch path); schedtrace, stats and the control socket read them
 * racily. lat: scheduling latency (runnable -> running) of sampled
 * readyings, bucket i counting [2^(i+LAT_SHIFT), 2^(i+LAT_SHIFT+1)) ns,
 * the first and last buckets open-ended. */
#define LAT_BUCKETS 24
#define LAT_SHIFT 8  /* bucket 0: < 512 ns; bucket 23: >= 2^31 ns (2.1 s) */

struct pstats {
  _Atomic uint64_t switches;  /* Gs run (execute) */
  _Atomic uint64_t steals;    /* successful steals by this P */
  _Atomic uint64_t stolen;    /* Gs those steals took */
  _Atomic uint64_t spills;    /* local queue full: half moved to the global one */
  _Atomic uint64_t created;   /* Gs created on this P */
  _Atomic uint64_t exited;    /* Gs that ended on this P */
  _Atomic uint64_t parks[WAIT__COUNT]; /* parks by wait reason */
  _Atomic uint64_t lat[LAT_BUCKETS];
};

/* P status, the token of P ownership.
 *  P_RUNNING  held by an M running runtime code (g0, or a runtime call
 *             made by a G): only that M touches the P.
 *  P_USER     its M runs a G's user code, which never touches the P. A
 *             runtime entry CASes it back to P_RUNNING (enter_runtime);
 *             sysmon may instead CAS it to P_IDLE when the M is found
 *             blocked in the kernel outside any wrapper (libc's internal
 *             calls), and hand the P to another M.
 *  P_SYSCALL  its M is in a wrapped blocking call; sysmon retakes it
 *             after ~20 us, exitsyscall CASes it back to P_USER.
 * A losing CAS on the M's side means the P is gone: the M finds another
 * P or gives its G to the global queue and sleeps (Go's exitsyscall). */
enum { P_IDLE, P_RUNNING, P_USER, P_SYSCALL };

struct p {
  int id;
  _Atomic int status;
  struct m *m;
  struct p *link;          /* idle list */
  uint64_t schedtick;      /* incremented on every schedule */
  _Atomic uint64_t syscalltick; /* incremented on every entersyscall */
  struct runq runq;

  gmp_spin timerlock;      /* guards timers; taken by any M */
  struct timerheap timers;
  _Atomic int64_t timer0;  /* when of the earliest timer, 0 if none */

  struct g *gfree;         /* local free Gs (with their TCBs and stacks) */
  int gfreecnt;
  /* Set by sysmon when the P has run one slice (schedtick unchanged) for
   * 10 ms while work waited: its next scheduling decision starts a new
   * slice, the G in runnext going behind the queue (findrunnable). The
   * preemption signal alone cannot end a slice that a pair of Gs passes
   * back and forth through runnext inside the runtime, where no signal
   * switches a G. */
  _Atomic int slice_end;
  /* G ids handed out by this P, taken from gmp_sched.goidgen 16 at a
   * time (Go's goidcache) so creating a G does not write a line that
   * every P writes. [goidcache, goidcacheend) are still unused. */
  uint64_t goidcache, goidcacheend;

  struct pstats st;
} __attribute__((aligned(64)));

/* ---- the scheduler ---------------------------------------------------- */

struct sched {
  gmp_lock lock;           /* guards: global runq, pidle, midle, allm */
  struct g *runqhead, *runqtail;
  _Atomic int32_t runqsize;
  /* The first nurgent Gs of the global queue came back from a blocking
   * system call and found no P: schedule() takes them before its local
   * queue (lock held to change; read without). A thread that waited in
   * the kernel has used no CPU meanwhile; behind a queue of CPU-bound
   * threads it would wait one 10 ms slice per thread ahead of it, where
   * the kernel's own scheduler runs a waking thread almost at once. */
  _Atomic int32_t nurgent;
  struct p *pidle;
  _Atomic int32_t npidle;
  struct m *midle;
  int32_t nmidle;
  int32_t mcount;          /* M structs made (ids 0..mcount-1) */
  struct m *mdead;         /* Ms whose OS thread ended, for reuse */
  int32_t nmdead;
  _Atomic uint64_t n_mstarted, n_mended; /* OS threads started/ended by newm/stopm */
  struct m *allm;
  _Atomic int32_t nmspinning;

  /* Global free G list: a stack of batches (see struct g's gfnext), so
   * a P refills its local list by taking one batch, without walking a
   * chain of Gs that are cold in every cache. */
  gmp_lock gflock;
  struct g *gfree;
  int32_t ngfree;

  /* Idle Ms sleep until the earliest timer: one of them (the "timer
   * sleeper") sleeps with a timeout; adding an earlier timer wakes it. */
  _Atomic int64_t sleep_until; /* 0: no timer sleeper */
  _Atomic uint32_t sleep_note;

  /* The network poller. lastpoll: when it was last polled, 0 while an M
   * is blocked in it (only one M blocks there at a time, Go's rule).
   * poll_until: that M's timeout (the earliest timer when it blocked),
   * so that an earlier timer breaks it out. */
  _Atomic int64_t lastpoll;
  _Atomic int64_t poll_until;
  _Atomic uint64_t n_netpoll;  /* Gs readied by the poller */
  _Atomic uint64_t n_pollwake; /* polls that readied at least one G */
  _Atomic uint64_t n_timer;    /* timers fired */

  _Atomic int64_t ngoroutines; /* live Gs, main included */
  _Atomic uint64_t n_handoff;  /* Ps retaken from Ms in system calls */
  _Atomic uint64_t n_handoff_user; /* of which from Ms blocked outside any wrapper */
  _Atomic uint64_t goidgen; /* last G id handed out to a P's goidcache */
};

extern struct sched gmp_sched;
extern struct p *gmp_allp;
extern int gmp_nprocs;

#endif
