// gobench: the Go equivalents of the C programs in tests/bench, for
// comparing libgmp with Go's own M:N scheduler. Same workloads, same
// RESULT lines; GOMAXPROCS is left at its default.
//
//	gobench createjoin-seq [N]                    (20000)
//	gobench createjoin-burst [K [R]]              (1000, 20)
//	gobench condpingpong [N]                      (100000)
//	gobench sockpingpong [N]                      (100000)
//	gobench mutex T [TOTAL]                       (TOTAL 2000000)
//	gobench sleepstorm [THREADS [ITERS [SLEEP_US]]] (10000, 20, 1000)
//
// A goroutine started with `go` and waited for (channel or WaitGroup) stands
// in for pthread_create + pthread_join.
package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func usage() {
	fmt.Fprintln(os.Stderr, `usage: gobench createjoin-seq [N]
       gobench readzero [N]
       gobench wakeup [HOGS [N]]
       gobench createjoin-burst [K [R]]
       gobench condpingpong [N]
       gobench sockpingpong [N]
       gobench mutex T [TOTAL]
       gobench sleepstorm [THREADS [ITERS [SLEEP_US]]]`)
	os.Exit(2)
}

func fail(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "gobench: FAIL: "+format+"\n", a...)
	os.Exit(1)
}

// argInt returns args[i] as an int in [min, max], or def if absent.
func argInt(args []string, i int, what string, def, min, max int64) int64 {
	if i >= len(args) {
		return def
	}
	v, err := strconv.ParseInt(args[i], 10, 64)
	if err != nil || v < min || v > max {
		fmt.Fprintf(os.Stderr, "gobench: bad %s %q (want %d..%d)\n", what, args[i], min, max)
		os.Exit(2)
	}
	return v
}

func result(bench, metric, format string, v interface{}, unit string) {
	fmt.Printf("RESULT %s %s "+format+" %s\n", bench, metric, v, unit)
}

// osThreads: OS threads of this process from /proc/self/status, -1 if unknown.
func osThreads() int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "Threads:") {
			n, err := strconv.Atoi(strings.TrimSpace(line[len("Threads:"):]))
			if err == nil {
				return n
			}
		}
	}
	return -1
}

var peakThreads int64

func noteThreads() {
	n := int64(osThreads())
	for {
		old := atomic.LoadInt64(&peakThreads)
		if n <= old || atomic.CompareAndSwapInt64(&peakThreads, old, n) {
			return
		}
	}
}

func createJoinSeq(n int64) {
	done := make(chan int64)
	one := func(i int64) {
		go func(v int64) { done <- v }(i)
		if got := <-done; got != i {
			fail("goroutine %d returned %d", i, got)
		}
	}
	warm := n / 10
	if warm > 1000 {
		warm = 1000
	}
	for i := int64(0); i < warm; i++ {
		one(i)
	}
	t0 := time.Now()
	for i := int64(0); i < n; i++ {
		one(i)
	}
	el := time.Since(t0).Seconds()
	us := el / float64(n) * 1e6
	fmt.Fprintf(os.Stderr, "createjoin-seq: %d go+wait in %.3f s: %.3f us each\n", n, el, us)
	result("createjoin_seq", "per_op", "%.3f", us, "us")
}

func createJoinBurst(k, rounds int64) {
	round := func() {
		var wg sync.WaitGroup
		wg.Add(int(k))
		for i := int64(0); i < k; i++ {
			go func() { wg.Done() }()
		}
		wg.Wait()
	}
	round() // warm-up
	t0 := time.Now()
	for r := int64(0); r < rounds; r++ {
		round()
	}
	el := time.Since(t0).Seconds()
	us := el / float64(k*rounds) * 1e6
	fmt.Fprintf(os.Stderr, "createjoin-burst: %d rounds x %d goroutines in %.3f s: %.3f us per goroutine\n",
		rounds, k, el, us)
	result("createjoin_burst", "per_thread", "%.3f", us, "us")
}

func condPingPong(rounds int64) {
	var mu sync.Mutex
	cv := [2]*sync.Cond{sync.NewCond(&mu), sync.NewCond(&mu)}
	turn := 0
	var moves [2]int64
	var wg sync.WaitGroup
	player := func(me int) {
		defer wg.Done()
		for i := int64(0); i < rounds; i++ {
			mu.Lock()
			for turn != me {
				cv[me].Wait()
			}
			turn = 1 - me
			moves[me]++
			cv[1-me].Signal()
			mu.Unlock()
		}
	}
	t0 := time.Now()
	wg.Add(2)
	go player(0)
	go player(1)
	wg.Wait()
	el := time.Since(t0).Seconds()
	if turn != 0 || moves[0] != rounds || moves[1] != rounds {
		fail("condpingpong: turn=%d moves=%d/%d, want 0 %d/%d", turn, moves[0], moves[1], rounds, rounds)
	}
	us := el / float64(rounds) * 1e6
	fmt.Fprintf(os.Stderr, "condpingpong: %d round trips in %.3f s: %.3f us per round trip\n", rounds, el, us)
	result("condpingpong", "roundtrip", "%.3f", us, "us")
}

// sockPingPong: the same as tests/bench/sock_pingpong.c, through Go's
// netpoller: both ends of a socketpair wrapped as net.Conn.
func sockPingPong(rounds int64) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		fail("sockpingpong: socketpair: %v", err)
	}
	conns := [2]net.Conn{}
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "sock")
		c, err := net.FileConn(f)
		if err != nil {
			fail("sockpingpong: FileConn: %v", err)
		}
		f.Close()
		conns[i] = c
	}
	done := make(chan struct{})
	go func() {
		b := make([]byte, 1)
		for i := int64(0); i < rounds; i++ {
			if _, err := io.ReadFull(conns[1], b); err != nil {
				fail("sockpingpong: ponger read: %v", err)
			}
			b[0]++
			if _, err := conns[1].Write(b); err != nil {
				fail("sockpingpong: ponger write: %v", err)
			}
		}
		close(done)
	}()
	b := make([]byte, 1)
	t0 := time.Now()
	for i := int64(0); i < rounds; i++ {
		want := b[0] + 1
		if _, err := conns[0].Write(b); err != nil {
			fail("sockpingpong: write: %v", err)
		}
		if _, err := io.ReadFull(conns[0], b); err != nil {
			fail("sockpingpong: read: %v", err)
		}
		if b[0] != want {
			fail("sockpingpong: got %d, want %d", b[0], want)
		}
	}
	el := time.Since(t0).Seconds()
	<-done
	us := el / float64(rounds) * 1e6
	fmt.Fprintf(os.Stderr, "sockpingpong: %d round trips in %.3f s: %.3f us per round trip\n", rounds, el, us)
	result("sockpingpong", "roundtrip", "%.3f", us, "us")
}

func mutexContended(nthreads, total int64) {
	per := total / nthreads
	if per < 1 {
		fmt.Fprintf(os.Stderr, "gobench: TOTAL %d < T %d\n", total, nthreads)
		os.Exit(2)
	}
	ops := per * nthreads
	var mu sync.Mutex
	var counter int64
	gate := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(int(nthreads))
	for id := int64(0); id < nthreads; id++ {
		go func(id int64) {
			defer wg.Done()
			<-gate
			half := per / 2
			for i := int64(0); i < per; i++ {
				mu.Lock()
				counter++
				mu.Unlock()
				if id == 0 && i == half {
					noteThreads()
				}
			}
		}(id)
	}
	noteThreads()
	t0 := time.Now()
	close(gate)
	wg.Wait()
	el := time.Since(t0).Seconds()
	if counter != ops {
		fail("mutex: counter=%d, want %d (T=%d)", counter, ops, nthreads)
	}
	ns := el / float64(ops) * 1e9
	bench := fmt.Sprintf("mutex_T%d", nthreads)
	fmt.Fprintf(os.Stderr, "mutex: T=%d, %d ops in %.3f s: %.2f ns/op, count ok, peak OS threads %d\n",
		nthreads, ops, el, ns, atomic.LoadInt64(&peakThreads))
	result(bench, "per_op", "%.2f", ns, "ns")
	result(bench, "threads", "%d", atomic.LoadInt64(&peakThreads), "count")
}

// pct: nearest-rank percentile of sorted a, in microseconds.
func pct(a []time.Duration, p float64) float64 {
	rank := int(p*float64(len(a)) + 0.999999)
	if rank < 1 {
		rank = 1
	}
	if rank > len(a) {
		rank = len(a)
	}
	return float64(a[rank-1].Nanoseconds()) / 1000
}

func sleepStorm(nthreads, iters, sleepUS int64) {
	d := time.Duration(sleepUS) * time.Microsecond
	late := make([]time.Duration, nthreads*iters)
	gate := make(chan struct{})
	var wg sync.WaitGroup
	tStart := time.Now()
	wg.Add(int(nthreads))
	for id := int64(0); id < nthreads; id++ {
		go func(mine []time.Duration) {
			defer wg.Done()
			<-gate
			for i := range mine {
				t0 := time.Now()
				time.Sleep(d)
				mine[i] = time.Since(t0) - d
			}
		}(late[id*iters : (id+1)*iters])
	}
	peak := osThreads()
	tGate := time.Now()
	close(gate)
	wg.Wait()
	tEnd := time.Now()
	sort.Slice(late, func(i, j int) bool { return late[i] < late[j] })
	wall := tEnd.Sub(tStart).Seconds()
	run := tEnd.Sub(tGate).Seconds()
	p50, p99 := pct(late, 0.50), pct(late, 0.99)
	pmax := float64(late[len(late)-1].Nanoseconds()) / 1000
	fmt.Fprintf(os.Stderr, "sleepstorm: %d goroutines x %d x Sleep(%dus): wall %.3f s (create %.3f s, run %.3f s; "+
		"ideal run %.3f s); lateness p50 %.1f us, p99 %.1f us, max %.1f us; peak OS threads %d\n",
		nthreads, iters, sleepUS, wall, tGate.Sub(tStart).Seconds(), run,
		float64(iters*sleepUS)/1e6, p50, p99, pmax, peak)
	result("sleepstorm", "wall", "%.4f", wall, "s")
	result("sleepstorm", "run", "%.4f", run, "s")
	result("sleepstorm", "late_p50", "%.1f", p50, "us")
	result("sleepstorm", "late_p99", "%.1f", p99, "us")
	result("sleepstorm", "late_max", "%.1f", pmax, "us")
	result("sleepstorm", "threads", "%d", peak, "count")
}

// readZero: read(2) of 1 byte from /dev/zero through the os package (Go's
// netpoller-aware file path, blocking syscalls with entersyscall).
func readZero(n int) {
	f, err := os.Open("/dev/zero")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer f.Close()
	buf := make([]byte, 1)
	for i := 0; i < n/10; i++ {
		f.Read(buf)
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		if k, err := f.Read(buf); k != 1 || err != nil {
			fmt.Fprintln(os.Stderr, "read failed")
			os.Exit(1)
		}
	}
	ns := float64(time.Since(start).Nanoseconds()) / float64(n)
	result("syscall_read", "per_op", "%.1f", ns, "ns")
}

// wakeup: a goroutine sleeping 1 ms in a loop beside hogs spinning goroutines.
func wakeup(hogs, n int) {
	var stop int32
	var wg sync.WaitGroup
	for i := 0; i < hogs; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			x := 1.0
			for atomic.LoadInt32(&stop) == 0 {
				for j := 0; j < 1000; j++ {
					x = x*1.0000001 + 0.5
				}
			}
			_ = x
		}()
	}
	late := make([]float64, n)
	for i := 0; i < n; i++ {
		a := time.Now()
		time.Sleep(time.Millisecond)
		late[i] = float64(time.Since(a).Nanoseconds())/1e3 - 1000.0
	}
	atomic.StoreInt32(&stop, 1)
	wg.Wait()
	sort.Float64s(late)
	name := fmt.Sprintf("wakeup_h%d", hogs)
	result(name, "p50", "%.1f", late[n/2], "us")
	result(name, "p99", "%.1f", late[n*99/100], "us")
	result(name, "max", "%.1f", late[n-1], "us")
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	args := os.Args[2:]
	const big = 1 << 40
	fmt.Fprintf(os.Stderr, "gobench: %s, GOMAXPROCS=%d\n", runtime.Version(), runtime.GOMAXPROCS(0))
	switch os.Args[1] {
	case "createjoin-seq":
		createJoinSeq(argInt(args, 0, "N", 20000, 1, big))
	case "createjoin-burst":
		createJoinBurst(argInt(args, 0, "K", 1000, 1, 1000000), argInt(args, 1, "R", 20, 1, 1000000))
	case "condpingpong":
		condPingPong(argInt(args, 0, "N", 100000, 1, big))
	case "sockpingpong":
		sockPingPong(argInt(args, 0, "N", 100000, 1, big))
	case "mutex":
		if len(args) < 1 {
			usage()
		}
		mutexContended(argInt(args, 0, "T", 0, 1, 1000000), argInt(args, 1, "TOTAL", 2000000, 1, big))
	case "sleepstorm":
		sleepStorm(argInt(args, 0, "THREADS", 10000, 1, 1000000), argInt(args, 1, "ITERS", 20, 1, 1000000),
			argInt(args, 2, "SLEEP_US", 1000, 0, 999999))
	case "readzero":
		readZero(int(argInt(args, 0, "N", 2000000, 1, big)))
	case "wakeup":
		wakeup(int(argInt(args, 0, "HOGS", 4, 0, 1000)), int(argInt(args, 1, "N", 500, 1, 1000000)))
	default:
		usage()
	}
}
