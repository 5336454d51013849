//! The face engine of the process: one [`vigil_faces::Engine`], created on first use with the
//! options the binary set at start ([`configure`]), shared by the face API and the stream
//! processors (its models take the time of a few requests to load; the binary warms it).

use std::sync::{Arc, OnceLock};

use vigil_faces::{Engine, EngineOptions};

use crate::error::{Error, Result};

/// The options the process's engine loads with (the backend, the detection size).
static OPTIONS: OnceLock<EngineOptions> = OnceLock::new();

/// Sets the options the engine will load with. Call before the engine's first use (the binary
/// does, at start); `false` when options were already set, which then stay.
pub fn configure(options: EngineOptions) -> bool {
    OPTIONS.set(options).is_ok()
}

/// The process's engine, loaded on first use (blocking: it parses and optimises the embedded
/// models) with the options of [`configure`], or the defaults (tract).
pub fn engine() -> Result<Arc<Engine>> {
    static ENGINE: OnceLock<std::result::Result<Arc<Engine>, String>> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let started = std::time::Instant::now();
            let options = OPTIONS.get_or_init(EngineOptions::default).clone();
            let e = Engine::with_options(options)
                .map(Arc::new)
                .map_err(|e| e.to_string());
            match &e {
                Ok(engine) => tracing::info!(
                    model = vigil_faces::MODEL_VERSION,
                    backend = engine.backend_description(),
                    ms = started.elapsed().as_millis() as u64,
                    "face engine loaded"
                ),
                Err(e) => tracing::error!("the face engine did not load: {e}"),
            }
            e
        })
        .clone()
        .map_err(|e| Error::Internal(format!("face engine: {e}")))
}
