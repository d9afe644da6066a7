//! Who may have an export's rows, judged at the moment they would get them: a download
//! checks the downloader's grants now, and a queued export is written only while the person
//! who asked for it may still export from every service in it. Access that ended since the
//! export was asked for ends the export too.

use crate::identity::permissions::{Grants, Permission};
use crate::identity::standing;
use crate::services::ServiceAccount;
use crate::store::exports::ExportRecord;
use crate::store::Db;

use super::{record_services, ExportError};

/// Who may see and download a background export, judged on the grants they hold now (a
/// leaver's file stays behind): the person who asked for it while they may still export
/// from every service in it, or someone who administers every service in it.
pub fn may_download(record: &ExportRecord, staff_id: i64, grants: &Grants) -> bool {
    let ids = record_services(record);
    if ids.is_empty() {
        return false;
    }
    let holds_all = |p: Permission| ids.iter().all(|id| grants.can(p, *id));
    (record.requested_by == staff_id && holds_all(Permission::ExportsCreate))
        || holds_all(Permission::ServicesManage)
}

/// A queued export runs with its requester's permissions now, not those they held when they
/// asked: someone removed from a service (or demoted, or disabled) meanwhile gets no file.
pub async fn requester_may_export(
    db: &Db,
    requested_by: i64,
    services: &[ServiceAccount],
) -> Result<(), ExportError> {
    for s in services {
        let now = standing::of(db, requested_by, s.id, &[Permission::ExportsCreate]).await?;
        if let Some(why) = now.reason("requester", &s.name) {
            return Err(ExportError::Invalid(format!("Not written: {why}")));
        }
    }
    Ok(())
}
