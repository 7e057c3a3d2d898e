//! The operating system's other mechanisms, each behind plain functions: processes ([`procfs`]:
//! identity from `/proc`; [`child`]: process groups and death signals), time ([`clock`]:
//! CLOCK_BOOTTIME and wall-clock stamps; [`tz`]: the local time zone, loaded with bounded work) and
//! the environment ([`setting`]: the variables the programs share, one name and one parser each;
//! [`host`]: this host's name).
//!
//! Holds no state and takes no locks. May use `error` and `fsio` only.

pub mod procfs;
pub mod child;
pub mod clock;
pub mod tz;
pub mod setting;
pub mod host;
