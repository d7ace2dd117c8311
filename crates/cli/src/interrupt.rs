//! SIGINT and SIGTERM around an apply: outside its commit they end the process at once (exit
//! 130: nothing of the apply has moved yet, or it is complete); inside it they only raise the
//! apply's cancel flag, and the apply undoes its renames before the command exits with 130.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use signal_hook::consts::{SIGINT, SIGTERM};
use uplift_upgrade::ApplyControl;

use crate::exit::Exit;

/// The test hook that aborts an apply after N renames (see `uplift_tree::ApplyControl`).
const CRASH_AFTER_RENAMES: &str = "UPLIFT_TEST_CRASH_AFTER_RENAMES";

/// Signal handling for a command that applies; install it before the first apply.
pub struct Interrupts {
    cancel: Arc<AtomicBool>,
    /// While true (outside a commit), a signal ends the process at once.
    exit_at_once: Arc<AtomicBool>,
}

impl Interrupts {
    pub fn install() -> Self {
        let cancel = Arc::new(AtomicBool::new(false));
        let exit_at_once = Arc::new(AtomicBool::new(true));
        for signal in [SIGINT, SIGTERM] {
            // The exit must be registered first: it looks at the flag before the cancel sets it.
            let registered = signal_hook::flag::register_conditional_shutdown(
                signal,
                Exit::Cancelled as i32,
                exit_at_once.clone(),
            )
            .and_then(|_| signal_hook::flag::register(signal, cancel.clone()));
            if let Err(error) = registered {
                tracing::warn!("cannot listen for signals: {error}");
            }
        }
        Self {
            cancel,
            exit_at_once,
        }
    }

    /// Runs `apply` with signals turned into its cancel flag.
    pub fn during_commit<T>(&self, apply: impl FnOnce(&ApplyControl) -> T) -> T {
        let control = ApplyControl {
            cancel: Some(self.cancel.clone()),
            abort_after_renames: std::env::var(CRASH_AFTER_RENAMES)
                .ok()
                .and_then(|n| n.parse().ok()),
        };
        self.exit_at_once.store(false, Ordering::SeqCst);
        let result = apply(&control);
        self.exit_at_once.store(true, Ordering::SeqCst);
        result
    }
}
