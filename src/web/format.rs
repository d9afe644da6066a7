//! How the console writes times and counts on its pages.

use time::macros::format_description;

use crate::store;
use crate::timezone::Zone;

/// A time as the console shows it, in its time zone.
pub fn local_time(zone: Zone, us: i64) -> String {
    let t = store::from_micros(us);
    t.to_offset(zone.offset_at(t))
        .format(format_description!(
            "[day] [month repr:short] [year], [hour]:[minute]:[second]"
        ))
        .unwrap_or_default()
}

pub use crate::money::thousands;
