//! Stand-ins the tests put in place of real parts: keys that can be revoked, slow disks.

use std::sync::Arc;

use vigil_api_common::Authenticator;

/// Lets everything through, like `Anonymous`, until [`Revocable::revoke`]: from then on its
/// principal is no longer current (as a revoked SigV4 key).
#[derive(Debug, Default)]
pub struct Revocable {
    revoked: std::sync::atomic::AtomicBool,
}

impl Revocable {
    pub const KEY: &'static str = "AKIDREVOCABLE";

    pub fn revoke(&self) {
        self.revoked
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Authenticator for Revocable {
    fn precheck(
        &self,
        _: &axum::http::request::Parts,
        _: vigil_api_common::Service,
    ) -> vigil_api_common::CommonResult<()> {
        Ok(())
    }

    fn authenticate(
        &self,
        _: &axum::http::request::Parts,
        _: vigil_api_common::Payload<'_>,
        _: vigil_api_common::Service,
    ) -> vigil_api_common::CommonResult<vigil_api_common::Principal> {
        Ok(vigil_api_common::Principal {
            access_key_id: Self::KEY.into(),
            policy: None,
        })
    }

    fn authorize_action(
        &self,
        _: &vigil_api_common::Principal,
        _: &str,
        _: Option<&str>,
    ) -> vigil_api_common::CommonResult<()> {
        Ok(())
    }

    fn is_current(&self, principal: &vigil_api_common::Principal) -> bool {
        assert_eq!(principal.access_key_id, Self::KEY);
        !self.revoked.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// The real filesystem, with every `fsync` of a file's data taking `delay` longer: a disk
/// slower than the producers.
#[derive(Debug)]
pub struct SlowFs {
    pub delay: std::time::Duration,
}

#[derive(Debug)]
struct SlowFile {
    inner: Arc<dyn vigil_store::fs::File>,
    delay: std::time::Duration,
}

impl vigil_store::fs::File for SlowFile {
    fn len(&self) -> std::io::Result<u64> {
        self.inner.len()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        self.inner.read_at(offset, buf)
    }
    fn write_at(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.inner.write_at(offset, data)
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        std::thread::sleep(self.delay);
        self.inner.sync_data()
    }
}

impl vigil_store::fs::Fs for SlowFs {
    fn open(
        &self,
        path: &std::path::Path,
        create: bool,
    ) -> std::io::Result<Arc<dyn vigil_store::fs::File>> {
        let inner = vigil_store::fs::StdFs.open(path, create)?;
        Ok(Arc::new(SlowFile {
            inner,
            delay: self.delay,
        }))
    }
    fn remove(&self, path: &std::path::Path) -> std::io::Result<()> {
        vigil_store::fs::StdFs.remove(path)
    }
    fn list(&self, dir: &std::path::Path) -> std::io::Result<Vec<String>> {
        vigil_store::fs::StdFs.list(dir)
    }
    fn create_dir_all(&self, dir: &std::path::Path) -> std::io::Result<()> {
        vigil_store::fs::StdFs.create_dir_all(dir)
    }
    fn sync_dir(&self, dir: &std::path::Path) -> std::io::Result<()> {
        vigil_store::fs::StdFs.sync_dir(dir)
    }
    fn available_space(&self, dir: &std::path::Path) -> std::io::Result<u64> {
        vigil_store::fs::StdFs.available_space(dir)
    }
    fn exists(&self, path: &std::path::Path) -> bool {
        vigil_store::fs::StdFs.exists(path)
    }
    fn lock(
        &self,
        path: &std::path::Path,
    ) -> std::io::Result<Box<dyn std::any::Any + Send + Sync>> {
        vigil_store::fs::StdFs.lock(path)
    }
}
