//! The storage seam: where durable queues and retained topics keep their messages.
//!
//! Every file operation goes through the [`Disk`] trait, so the log runs on the real
//! file system ([`OsDisk`]) and, in tests, on a disk that loses power ([`SimDisk`]).

mod commit;
mod disk;
mod error;
mod index;
mod record;
mod segment;
mod sim_disk;

pub use commit::Ticket;
pub use disk::{Disk, DiskFile, OsDisk};
pub use error::StoreError;
pub use sim_disk::{SimCounters, SimDisk};
