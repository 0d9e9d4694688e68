//! Working on the two samples of a group on two threads.

/// Above this many values in all, the two samples of a group are worked
/// on by two threads (sorting, counting, binning).
pub(crate) const PARALLEL_MIN: usize = 1 << 20;

/// Runs `a` and `b`, on two threads when `parallel`.
pub(crate) fn join<A: Send, B>(
    parallel: bool,
    a: impl FnOnce() -> A + Send,
    b: impl FnOnce() -> B,
) -> (A, B) {
    if !parallel {
        return (a(), b());
    }
    std::thread::scope(|scope| {
        let a = scope.spawn(a);
        let b = b();
        let a = a.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        (a, b)
    })
}
