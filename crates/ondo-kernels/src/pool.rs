//! A thread pool for per-token work: many small parallel regions (one per matrix product), so
//! entering and leaving a region must cost microseconds. Workers spin on a generation counter
//! for a short while before sleeping, the calling thread takes a share of the work itself, and
//! the caller waits by spinning on a counter of finished workers.
//!
//! Only one region runs at a time: a call made while the pool is busy (another thread's
//! region, or a nested call from inside a job) runs serially on the calling thread instead, so
//! there is no deadlock and no oversubscription. A panic inside a job is caught on the worker
//! and re-raised on the caller once every worker has finished.

use std::cell::{Cell, UnsafeCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long an idle worker spins before it sleeps.
const SPIN: Duration = Duration::from_micros(300);

type Job<'a> = &'a (dyn Fn(usize) + Sync);

/// What the caller writes to open a region, on a cache line of its own: the workers spin on
/// `generation` and find the job beside it, so seeing a region costs one line's transfer.
#[repr(align(64))]
struct Publish {
    /// Bumped by the caller to publish a new job.
    generation: AtomicUsize,
    /// The current job, with its lifetime erased: written by the region's owner before it bumps
    /// `generation` (release), read by the workers after they see the bump (acquire), and
    /// neither again until every worker has counted itself in `done`.
    job: UnsafeCell<Option<Job<'static>>>,
}

/// What the workers write, on another line.
#[repr(align(64))]
struct Finish {
    /// Workers that finished a region, over all regions: every region adds `n_threads - 1`,
    /// so region number `g` is done when this reaches `g * (n_threads - 1)`.
    done: AtomicUsize,
    /// Jobs that panicked on a worker, over all regions.
    panics: AtomicUsize,
}

struct Shared {
    n_threads: usize,
    publish: Publish,
    finish: Finish,
    sleep_lock: Mutex<()>,
    wake: Condvar,
    /// Workers inside (or about to enter) `wake.wait`: the caller notifies only when nonzero.
    sleepers: AtomicUsize,
    /// Held by the thread that runs a region.
    busy: Mutex<()>,
}

// SAFETY: `publish.job` is the only field that is not Sync; its accesses are ordered by the
// protocol described on `Publish::job` (one writer, the holder of `busy`, while no worker reads).
unsafe impl Sync for Shared {}

thread_local! {
    static IN_REGION: Cell<bool> = const { Cell::new(false) };
}

/// Marks this thread as inside a region until dropped (then restores the mark it had).
struct InRegion(bool);

impl InRegion {
    fn enter() -> Self {
        InRegion(IN_REGION.with(|r| r.replace(true)))
    }
}

impl Drop for InRegion {
    fn drop(&mut self) {
        IN_REGION.with(|r| r.set(self.0));
    }
}

static POOL: OnceLock<&'static Shared> = OnceLock::new();
static REQUESTED_THREADS: AtomicUsize = AtomicUsize::new(0);

/// Sets the number of threads (including the caller) before first use; 0 means all cores.
pub fn set_threads(n: usize) {
    REQUESTED_THREADS.store(n, Ordering::Relaxed);
}

/// Threads that share a region (including the caller).
pub fn threads() -> usize {
    pool().n_threads
}

fn pool() -> &'static Shared {
    POOL.get_or_init(|| {
        let n = match REQUESTED_THREADS.load(Ordering::Relaxed) {
            0 => std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            n => n,
        };
        let shared: &'static Shared = Box::leak(Box::new(Shared {
            n_threads: n.max(1),
            publish: Publish {
                generation: AtomicUsize::new(0),
                job: UnsafeCell::new(None),
            },
            finish: Finish {
                done: AtomicUsize::new(0),
                panics: AtomicUsize::new(0),
            },
            sleep_lock: Mutex::new(()),
            wake: Condvar::new(),
            sleepers: AtomicUsize::new(0),
            busy: Mutex::new(()),
        }));
        for worker in 1..shared.n_threads {
            std::thread::Builder::new()
                .name(format!("ondo-worker-{worker}"))
                .spawn(move || worker_loop(shared, worker))
                .expect("spawn worker thread");
        }
        shared
    })
}

fn worker_loop(s: &'static Shared, index: usize) {
    let mut seen = 0usize;
    loop {
        let start = Instant::now();
        let mut spins = 0u32;
        let mut gen = s.publish.generation.load(Ordering::Acquire);
        while gen == seen {
            spins = spins.wrapping_add(1);
            // Reading the clock costs more than a spin: look at it every 256 spins only.
            if !spins.is_multiple_of(256) || start.elapsed() < SPIN {
                std::hint::spin_loop();
            } else {
                let guard = s.sleep_lock.lock().unwrap_or_else(|e| e.into_inner());
                s.sleepers.fetch_add(1, Ordering::SeqCst);
                if s.publish.generation.load(Ordering::SeqCst) == seen {
                    let _unused = s.wake.wait_timeout(guard, Duration::from_millis(50));
                }
                s.sleepers.fetch_sub(1, Ordering::SeqCst);
            }
            gen = s.publish.generation.load(Ordering::Acquire);
        }
        seen = gen;
        // SAFETY: the generation was bumped (acquire above) after the job was written, and the
        // job is not written again before this worker counts itself done below.
        let job = unsafe { *s.publish.job.get() };
        if let Some(job) = job {
            IN_REGION.with(|f| f.set(true));
            if catch_unwind(AssertUnwindSafe(|| job(index))).is_err() {
                s.finish.panics.fetch_add(1, Ordering::Relaxed);
            }
            IN_REGION.with(|f| f.set(false));
        }
        s.finish.done.fetch_add(1, Ordering::AcqRel);
    }
}

/// Runs `f(i)` for every thread index `i` in `0..threads()`, in parallel, and returns when all
/// are done. Falls back to running every index on this thread when the pool is busy.
pub fn run(f: &(dyn Fn(usize) + Sync)) {
    let s = pool();
    // Run serially, the shares count as inside a region too: what they nest runs serially
    // (and in order, see `for_each_claimed_ranges`) instead of taking the pool mid-share.
    let serial = || {
        let _inside = InRegion::enter();
        (0..s.n_threads).for_each(f)
    };
    if s.n_threads == 1 || IN_REGION.with(|r| r.get()) {
        return serial();
    }
    let Ok(_busy) = s.busy.try_lock() else {
        return serial();
    };
    let panics = s.finish.panics.load(Ordering::Relaxed);
    // SAFETY: the job reference is only used by workers between the generation bump below
    // and the moment `done` reaches this region's count, and this function does not return
    // before then, so `f` outlives every use. Holding `busy`, this thread alone writes the
    // slot, and no worker reads it now: each has counted itself done for the last region and
    // reads the slot only after seeing the bump below. The slot is cleared before returning.
    unsafe {
        *s.publish.job.get() = Some(std::mem::transmute::<Job<'_>, Job<'static>>(f));
    }
    let gen = s.publish.generation.fetch_add(1, Ordering::SeqCst) + 1;
    let target = gen.wrapping_mul(s.n_threads - 1);
    // A worker counts itself in `sleepers` under the lock before it re-checks the generation,
    // so either it sees the new generation or this load sees it and the notify (which needs
    // the lock, so comes after its wait began) wakes it.
    if s.sleepers.load(Ordering::SeqCst) > 0 {
        let _g = s.sleep_lock.lock().unwrap_or_else(|e| e.into_inner());
        s.wake.notify_all();
    }
    IN_REGION.with(|r| r.set(true));
    let mine = catch_unwind(AssertUnwindSafe(|| f(0)));
    IN_REGION.with(|r| r.set(false));
    let mut spins = 0u32;
    while s.finish.done.load(Ordering::Acquire) != target {
        spins = spins.wrapping_add(1);
        // A worker that waits this long was probably descheduled (more runnable threads than
        // cores): give it this core instead of spinning through our time slice.
        if spins.is_multiple_of(4096) {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
    // SAFETY: every worker is done with this region (acquire above), so none reads the slot.
    unsafe { *s.publish.job.get() = None };
    if let Err(p) = mine {
        std::panic::resume_unwind(p);
    }
    if s.finish.panics.load(Ordering::Relaxed) != panics {
        panic!("a worker thread panicked in a parallel region");
    }
}

/// Splits `out` into one contiguous share per thread, in units of `unit` elements, and calls
/// `f(first_unit, share)` for each in parallel. Small jobs (fewer than `min_units` units per
/// thread) run on the calling thread alone.
pub fn for_each_share<T, F>(out: &mut [T], unit: usize, min_units: usize, f: F)
where
    T: Send,
    F: Fn(usize, &mut [T]) + Sync,
{
    let unit = unit.max(1);
    let units = out.len() / unit;
    let n = threads();
    if n == 1 || units < min_units.max(1) * 2 {
        f(0, out);
        return;
    }
    let per = units.div_ceil(n);
    let base = SendPtr(out.as_mut_ptr());
    let len = out.len();
    run(&|t| {
        let first = t * per;
        let last = ((t + 1) * per).min(units);
        if first >= last {
            return;
        }
        let end = if last == units { len } else { last * unit };
        // SAFETY: shares [first*unit, end) are disjoint for distinct t and lie inside `out`,
        // which stays mutably borrowed by this call until every share is done.
        let share = unsafe {
            std::slice::from_raw_parts_mut(base.get().add(first * unit), end - first * unit)
        };
        f(first, share);
    });
}

/// Calls `f(item)` for every item, the threads claiming items one at a time from a shared
/// counter: a thread that is descheduled (on a machine shared with other work) holds up only
/// the item it is on, and the others take the rest. Each item is visited exactly once, so
/// results do not depend on which thread ran what.
pub fn for_each_claimed<T, F>(items: &mut [T], f: F)
where
    T: Send,
    F: Fn(&mut T) + Sync,
{
    let base = SendPtr(items.as_mut_ptr());
    // SAFETY: each index below len is claimed once, so no two threads touch one item;
    // `items` stays mutably borrowed by this call until every thread is done.
    for_each_claimed_index(items.len(), |i| f(unsafe { &mut *base.get().add(i) }));
}

/// [`for_each_claimed`] over the indices 0..count (no allocation).
pub fn for_each_claimed_index<F>(count: usize, f: F)
where
    F: Fn(usize) + Sync,
{
    if threads() == 1 || count < 2 {
        (0..count).for_each(f);
        return;
    }
    let next = AtomicUsize::new(0);
    run(&|_| loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= count {
            break;
        }
        f(i);
    });
}

/// The most threads [`for_each_claimed_ranges`] gives a range of their own (the others only
/// help with the ranges' ends).
const MAX_RANGES: usize = 16;

/// [`for_each_claimed_index`] over `0..count` for items that read memory laid out in item
/// order, in two phases: the first `shared` items, then the others. Each phase is split into
/// one contiguous range per thread. A thread takes its own range front to back, so it streams
/// that memory without a break (a thread whose items alternated with another's read a Q4_1
/// matrix ~25% slower, each jump costing a new hardware-prefetch stream; measured with scratch
/// code on this project's 2-core machine), then takes what is left of the others' from their
/// back ends, one item at a time: a thread that is descheduled still holds up only the item it
/// is on. So, balance permitting, a thread gets the same items of the first phase from one
/// call to the next (a decoding batch's tokens: their rows and caches stay in its core's
/// caches). Each item is visited exactly once.
pub fn for_each_claimed_ranges<F>(shared: usize, count: usize, f: F)
where
    F: Fn(usize) + Sync,
{
    let n = threads();
    // Nested in a region, the pool runs every thread's share on this thread: in item order,
    // not each range's back end after the first range.
    let nested = IN_REGION.with(|r| r.get());
    if n == 1 || nested || count < 2 || u32::try_from(count).is_err() {
        (0..count).for_each(f);
        return;
    }
    let shared = shared.min(count);
    let first = Ranges::new(0..shared, n);
    let second = Ranges::new(shared..count, n);
    run(&|t| {
        first.drain(t, &f);
        second.drain(t, &f);
    });
}

/// One phase of [`for_each_claimed_ranges`]: its items split into `len` contiguous ranges.
struct Ranges {
    ends: [Ends; MAX_RANGES],
    len: usize,
}

impl Ranges {
    fn new(items: std::ops::Range<usize>, threads: usize) -> Self {
        let (start, count) = (items.start, items.len());
        let len = threads.min(MAX_RANGES).min(count).max(1);
        let ends = std::array::from_fn(|r| {
            let lo = start + count * r / len;
            let hi = start + count * (r + 1) / len;
            Ends::new(if r < len { lo..hi } else { 0..0 })
        });
        Ranges { ends, len }
    }

    /// Thread `t`'s share: its own range front to back, then the others' from their backs.
    fn drain(&self, t: usize, f: &impl Fn(usize)) {
        if t < self.len {
            while let Some(i) = self.ends[t].take(false) {
                f(i);
            }
        }
        for k in 1..=self.len {
            let other = &self.ends[(t + k) % self.len];
            while let Some(i) = other.take(true) {
                f(i);
            }
        }
    }
}

/// The unclaimed items `lo..hi` of one range of [`for_each_claimed_ranges`], packed in one
/// atomic word (its own cache line: the owner's claims do not disturb the other threads).
#[repr(align(64))]
struct Ends(std::sync::atomic::AtomicU64);

impl Ends {
    fn new(r: std::ops::Range<usize>) -> Self {
        Ends(std::sync::atomic::AtomicU64::new(
            r.start as u64 | (r.end as u64) << 32,
        ))
    }

    /// Claims the first unclaimed item, or the last if `back`.
    fn take(&self, back: bool) -> Option<usize> {
        let mut cur = self.0.load(Ordering::Relaxed);
        loop {
            let (lo, hi) = (cur & 0xFFFF_FFFF, cur >> 32);
            if lo >= hi {
                return None;
            }
            let (new, item) = if back {
                (lo | (hi - 1) << 32, hi - 1)
            } else {
                (cur + 1, lo)
            };
            match self
                .0
                .compare_exchange_weak(cur, new, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return Some(item as usize),
                Err(c) => cur = c,
            }
        }
    }
}

struct SendPtr<T>(*mut T);
impl<T> Clone for SendPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SendPtr<T> {}
// SAFETY: used only to hand disjoint sub-slices of one buffer (of Send elements) to the pool's
// threads.
unsafe impl<T: Send> Send for SendPtr<T> {}
unsafe impl<T: Send> Sync for SendPtr<T> {}
impl<T> SendPtr<T> {
    fn get(self) -> *mut T {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_element_is_written_once() {
        for len in [0usize, 1, 7, 100, 1001, 65536] {
            let mut out = vec![0.0f32; len];
            for_each_share(&mut out, 1, 1, |first, share| {
                for (i, v) in share.iter_mut().enumerate() {
                    *v += (first + i) as f32;
                }
            });
            assert!(
                out.iter().enumerate().all(|(i, v)| *v == i as f32),
                "len {len}"
            );
        }
    }

    #[test]
    fn claimed_items_are_each_visited_once() {
        for len in [0usize, 1, 2, 3, 100, 1024] {
            let mut items: Vec<(usize, u32)> = (0..len).map(|i| (i, 0)).collect();
            for_each_claimed(&mut items, |(i, visits)| {
                *visits += 1;
                // uneven work, so the threads interleave their claims
                let spin = (*i * 7919) % 2000;
                std::hint::black_box((0..spin).sum::<usize>());
            });
            assert!(items.iter().all(|&(_, v)| v == 1), "len {len}");
        }
    }

    #[test]
    fn items_in_ranges_are_each_visited_once() {
        for (shared, count) in [
            (0, 0),
            (0, 1),
            (1, 1),
            (3, 2),
            (0, 2),
            (2, 3),
            (8, 100),
            (0, 1031),
        ] {
            let visits: Vec<AtomicUsize> = (0..count).map(|_| AtomicUsize::new(0)).collect();
            let shared_done = AtomicUsize::new(0);
            for_each_claimed_ranges(shared, count, |i| {
                if i < shared.min(count) {
                    shared_done.fetch_add(1, Ordering::Relaxed);
                }
                visits[i].fetch_add(1, Ordering::Relaxed);
                // uneven work, so that the threads take from each other's ranges
                let spin = (i * 7919) % 3000;
                std::hint::black_box((0..spin).sum::<usize>());
            });
            assert!(
                visits.iter().all(|v| v.load(Ordering::Relaxed) == 1),
                "{shared} {count}"
            );
            assert_eq!(shared_done.load(Ordering::Relaxed), shared.min(count));
        }
    }

    #[test]
    fn items_in_ranges_run_in_order_when_nested() {
        let orders: Vec<std::sync::Mutex<Vec<usize>>> =
            (0..threads()).map(|_| Default::default()).collect();
        run(&|t| {
            let order = &orders[t];
            for_each_claimed_ranges(3, 40, |i| order.lock().unwrap().push(i));
        });
        for order in orders {
            assert_eq!(order.into_inner().unwrap(), (0..40).collect::<Vec<_>>());
        }
    }

    #[test]
    fn nested_and_concurrent_regions_run_serially_without_deadlock() {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    for _ in 0..200 {
                        let mut out = vec![0.0f32; 4096];
                        for_each_share(&mut out, 64, 1, |_, share| {
                            let mut inner = vec![0.0f32; 256];
                            for_each_share(&mut inner, 1, 1, |_, s| s.fill(1.0));
                            share.fill(inner.iter().sum());
                        });
                        assert!(out.iter().all(|&v| v == 256.0));
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    }

    #[test]
    fn a_panicking_job_reaches_the_caller_and_the_pool_survives() {
        let r = std::panic::catch_unwind(|| {
            let mut out = vec![0.0f32; 1024];
            for_each_share(&mut out, 1, 1, |first, _| {
                if first > 0 {
                    panic!("boom");
                }
            });
        });
        if threads() > 1 {
            assert!(r.is_err());
        }
        let mut out = vec![0.0f32; 1024];
        for_each_share(&mut out, 1, 1, |_, s| s.fill(2.0));
        assert!(out.iter().all(|&v| v == 2.0));
    }
}
