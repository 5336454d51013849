//! Vigil's web console, as built files embedded in the binary: no Node.js is needed to run
//! (or build) Vigil.
//!
//! The sources are TypeScript and CSS in `web/` (`web/README.md`); `npm run build` there
//! bundles them with esbuild (hls.js and @noble/hashes from npm included) into `dist/`, with
//! content hashes in the file names, gzip-compresses each file, and writes `dist/assets.rs`,
//! the table this crate includes. `dist/` is committed; `scripts/test` rebuilds it from the
//! sources and fails if the committed files differ, so they cannot drift apart.
//!
//! The server side (sessions, the console's API, headers) lives in `vigil-server`
//! (`crates/server/src/console/`); this crate only holds bytes.

/// One built file.
#[derive(Debug)]
pub struct Asset {
    /// The path under `/console/` (`app-5WZ3XKQE.js`); `index.html` is served at `/`.
    pub path: &'static str,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// The file.
    pub body: &'static [u8],
    /// The same, gzip-compressed, when that is smaller.
    pub gzip: Option<&'static [u8]>,
    /// Whether the name carries a content hash, so the file may be cached for good.
    pub immutable: bool,
}

include!("../dist/assets.rs");

/// A built file by its path under `/console/`.
pub fn asset(path: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.path == path)
}

/// The console's page.
pub fn index() -> &'static Asset {
    &INDEX
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_files_that_exist() {
        let page = std::str::from_utf8(index().body).unwrap_or_default();
        let mut named = 0;
        for a in ASSETS {
            assert!(!a.body.is_empty(), "{} is empty", a.path);
            if a.immutable {
                assert!(
                    page.contains(&format!("/console/{}", a.path)),
                    "index.html does not name {}",
                    a.path
                );
                named += 1;
            }
        }
        assert!(named >= 2, "a script and a style sheet");
        assert!(asset("index.html").is_some());
        assert!(asset("../Cargo.toml").is_none());
    }
}
