//! Runs the conformance suite against both stores.

use std::sync::Arc;

use natrium_store::conformance::Harness;
use natrium_store::{Clock, MemStore, StoreConfig, StreamStore};

/// Memory store harness: every open is a fresh store.
struct MemHarness;

impl Harness for MemHarness {
    fn open(&mut self, cfg: StoreConfig, clock: Arc<dyn Clock>) -> Box<dyn StreamStore> {
        Box::new(MemStore::with_clock(cfg, clock))
    }
    fn persistent(&self) -> bool {
        false
    }
}

natrium_store::conformance_tests!(mem, super::MemHarness);

/// File store harness: one directory per test, reopened in place. Small segments so
/// the suite exercises segment rolling and whole-segment deletion.
struct FileHarness {
    dir: tempfile::TempDir,
    durability: natrium_store::Durability,
}

impl FileHarness {
    fn new(durability: natrium_store::Durability) -> Self {
        FileHarness {
            dir: tempfile::tempdir().expect("tempdir"),
            durability,
        }
    }
}

impl Harness for FileHarness {
    fn open(&mut self, cfg: StoreConfig, clock: Arc<dyn Clock>) -> Box<dyn StreamStore> {
        let store = natrium_store::FileStore::open(
            self.dir.path(),
            natrium_store::FileStoreOptions {
                durability: self.durability,
                segment_size: 4096,
                config: cfg,
                clock,
                ..Default::default()
            },
        )
        .expect("open file store");
        Box::new(store)
    }
    fn persistent(&self) -> bool {
        true
    }
}

natrium_store::conformance_tests!(
    file_always,
    super::FileHarness::new(natrium_store::Durability::Always)
);
natrium_store::conformance_tests!(
    file_interval,
    super::FileHarness::new(natrium_store::Durability::Interval(
        std::time::Duration::from_millis(50)
    ))
);
