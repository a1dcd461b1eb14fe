package gemm

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// parallelMinFlops is the product size (2·m·n·k) below which sharing it with another
// goroutine costs more than it saves (a 64×32×64 product still gains from a second core that
// is already awake). A variable so that tests can force the split on tiny shapes.
var parallelMinFlops = 1 << 18

// spinFor is how long an idle worker keeps polling for its next job before it parks.
// A training step issues its products back to back; a parked worker is woken through the
// scheduler, which queues it behind the caller on the caller's own P, so the first product
// after a pause runs nearly serially. Polling (yielding the P at each turn, so other
// goroutines still run) keeps the second core ready between the products of a step.
var spinFor = 200 * time.Microsecond

// call is the per-call state: the parameters, the caller's own pack buffers and the barrier.
// Calls are recycled through a free list so that a steady stream of Sgemm calls allocates nothing.
type call struct {
	p       params
	ws      workspace
	pending atomic.Int32 // helpers posted and not finished (or revoked) yet
	wg      sync.WaitGroup
	helpers []*worker
}

var (
	freeMu   sync.Mutex
	freeList []*call
)

func getCall() *call {
	freeMu.Lock()
	defer freeMu.Unlock()
	if n := len(freeList); n > 0 {
		c := freeList[n-1]
		freeList = freeList[:n-1]
		return c
	}
	return new(call)
}

func putCall(c *call) {
	c.p.a, c.p.b, c.p.c = nil, nil, nil // do not keep the caller's matrices alive
	freeMu.Lock()
	freeList = append(freeList, c)
	freeMu.Unlock()
}

// Worker states.
const (
	idle   = iota // polling for a job
	posted        // a job is in w.job
	busy          // working on it
	parked        // blocked on w.wake
)

// worker is a persistent goroutine with its own pack buffers.
type worker struct {
	state atomic.Int32
	job   *call
	wake  chan struct{}
	ws    workspace
}

var (
	poolMu    sync.Mutex
	poolIdle  []*worker // workers not lent to any call
	poolTotal int
)

// borrow lends up to n idle workers to a call, starting new ones while the pool has fewer
// than max. Concurrent callers never wait for each other: a caller that finds no idle
// worker computes more of its product itself.
func borrow(dst []*worker, n, max int) []*worker {
	poolMu.Lock()
	defer poolMu.Unlock()
	for len(dst) < n {
		if k := len(poolIdle); k > 0 {
			dst = append(dst, poolIdle[k-1])
			poolIdle = poolIdle[:k-1]
			continue
		}
		if poolTotal >= max {
			break
		}
		w := &worker{wake: make(chan struct{}, 1)}
		poolTotal++
		go w.loop()
		dst = append(dst, w)
	}
	return dst
}

func giveBack(ws []*worker) {
	poolMu.Lock()
	poolIdle = append(poolIdle, ws...)
	poolMu.Unlock()
}

func (w *worker) post(cl *call) {
	w.job = cl
	if w.state.Swap(posted) == parked {
		w.wake <- struct{}{}
	}
}

// revoke takes back a job the worker has not started; it reports false if the worker has.
func (w *worker) revoke() bool {
	return w.state.CompareAndSwap(posted, idle)
}

func (w *worker) loop() {
	for {
		start := time.Now()
		for !w.state.CompareAndSwap(posted, busy) {
			if time.Since(start) < spinFor {
				runtime.Gosched()
				continue
			}
			if w.state.CompareAndSwap(idle, parked) {
				<-w.wake
			}
		}
		cl := w.job
		w.job = nil
		w.ws.work(&cl.p)
		// Idle before done: once the caller sees pending reach 0 it may post again at once.
		w.state.Store(idle)
		cl.pending.Add(-1)
		cl.wg.Done()
	}
}

// wait returns when no helper of cl is still working: helpers that have not started yet
// (their goroutine not scheduled) are revoked, since the chunks are all claimed by now.
func (cl *call) wait() {
	for _, w := range cl.helpers {
		if w.revoke() {
			cl.pending.Add(-1)
			cl.wg.Done()
		}
	}
	start := time.Now()
	for cl.pending.Load() != 0 && time.Since(start) < spinFor {
		runtime.Gosched()
	}
	cl.wg.Wait()
}

// run computes the product with up to Threads() goroutines: the caller and borrowed workers
// all claim chunks from the same counter.
func run(cl *call) {
	p := &cl.p
	kn := p.kern
	for kn.narrow != nil && p.n <= kn.narrow.nr {
		kn = kn.narrow
	}
	p.kern = kn
	t := Threads()
	if 2*p.m*p.n*p.k < parallelMinFlops {
		t = 1
	}
	p.plan(t)
	t = min(t, p.nI*p.nJ)
	if t > 1 {
		cl.helpers = borrow(cl.helpers[:0], t-1, t-1)
	}
	if len(cl.helpers) == 0 {
		cl.ws.work(p)
		return
	}
	cl.pending.Store(int32(len(cl.helpers)))
	cl.wg.Add(len(cl.helpers))
	for _, w := range cl.helpers {
		w.post(cl)
	}
	cl.ws.work(p)
	cl.wait()
	giveBack(cl.helpers)
	clear(cl.helpers)
	cl.helpers = cl.helpers[:0]
}
