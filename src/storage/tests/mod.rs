//! Behaviour tests of the partition log through its public API, against real files, one
//! file per topic; shared set-up lives in `support`.

mod append;
mod close;
mod compaction;
mod durability;
mod follower;
mod lookup;
mod read;
mod recovery;
mod retention;
mod support;
mod truncation;
