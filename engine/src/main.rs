//! The `autolake` binary.

/// mimalloc keeps freed memory for reuse, so the buffers each batch
/// allocates (encoded tensors, layer outputs, Arrow arrays) do not page
/// fault every time as the system allocator's returned memory does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    autolake_engine::cli::main()
}
