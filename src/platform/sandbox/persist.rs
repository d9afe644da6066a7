//! The `--data` file: what the sandbox needs to come back as it was after a restart. Seed
//! data is not stored; the anchor time, random seed and account list regenerate it, and
//! only payments that differ from it (new ones, and seeded ones that changed) are written,
//! whole. Writes go to a temporary file that is then renamed over the old one, so a crash
//! leaves either the old state or the new one.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::data::{
    CardRec, CardType, EventRec, Id, Language, MetaVal, Millis, PayRec, Provider, RefundRec, St,
};
use super::disputes::{DisputeRec, REASONS};
use super::options::AccountSpec;
use crate::platform::types::{PaymentStatus, RefundStatus};

pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateFile {
    pub format: u32,
    /// Seed payments spread over the 13 months before this time (ms since the epoch).
    pub anchor: Millis,
    pub random_seed: u64,
    pub clock_offset_ms: i64,
    pub accounts: Vec<StoredAccount>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredAccount {
    pub spec: AccountSpec,
    pub payments: Vec<StoredPayment>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredEvent {
    pub status: PaymentStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    pub at: Millis,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredCard {
    pub brand: String,
    pub card_type: String,
    pub first6: String,
    pub last4: String,
    pub expiry: String,
    pub holder: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredRefund {
    pub id: String,
    pub created: Millis,
    pub amount: i64,
    pub status: RefundStatus,
    pub settle_at: Millis,
    pub settle_days: u8,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredDispute {
    pub id: String,
    pub created: Millis,
    pub evidence_due: Millis,
    pub decided_at: Millis,
    pub lost: bool,
    pub reason: String,
    pub fee: i64,
}

impl StoredDispute {
    fn from_rec(d: &DisputeRec) -> StoredDispute {
        StoredDispute {
            id: d.id.to_string(),
            created: d.created,
            evidence_due: d.evidence_due,
            decided_at: d.decided_at,
            lost: d.lost,
            reason: d.reason().to_string(),
            fee: d.fee,
        }
    }

    fn into_rec(self) -> Result<DisputeRec, String> {
        Ok(DisputeRec {
            id: Id::parse(&self.id).ok_or_else(|| format!("bad dispute id {:?}", self.id))?,
            created: self.created,
            evidence_due: self.evidence_due,
            decided_at: self.decided_at,
            lost: self.lost,
            reason: REASONS
                .iter()
                .position(|r| *r == self.reason)
                .and_then(|i| u8::try_from(i).ok())
                .ok_or_else(|| format!("bad dispute reason {:?}", self.reason))?,
            fee: self.fee,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredPayment {
    pub id: String,
    pub created: Millis,
    pub amount: i64,
    pub reference: String,
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub return_url: String,
    pub language: String,
    pub provider: String,
    pub delayed_capture: bool,
    pub moto: bool,
    pub disputed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispute: Option<StoredDispute>,
    /// The recurring agreement the payment was taken under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreement: Option<String>,
    pub settle_days: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card: Option<StoredCard>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    pub events: Vec<StoredEvent>,
    #[serde(default)]
    pub refunds: Vec<StoredRefund>,
}

fn st_of(status: PaymentStatus, code: Option<&str>) -> Result<St, String> {
    St::from_parts(status, code).ok_or_else(|| format!("unknown state {status:?} {code:?}"))
}

impl StoredPayment {
    pub fn from_rec(p: &PayRec) -> StoredPayment {
        StoredPayment {
            id: p.id.to_string(),
            created: p.created,
            amount: p.amount,
            reference: p.reference.to_string(),
            description: p.description.to_string(),
            email: p.email.as_deref().map(str::to_string),
            return_url: p.return_url.to_string(),
            language: p.language.as_str().to_string(),
            provider: p.provider.as_str().to_string(),
            delayed_capture: p.delayed_capture,
            moto: p.moto,
            disputed: p.disputed,
            dispute: p.dispute.as_deref().map(StoredDispute::from_rec),
            agreement: p.agreement.as_deref().map(Id::to_string),
            settle_days: p.settle_days,
            metadata: p.metadata.as_ref().map(super::data::metadata_map),
            card: p.card.as_ref().map(|c| StoredCard {
                brand: c.brand.key().to_string(),
                card_type: c.card_type.as_str().to_string(),
                first6: c.first6().to_string(),
                last4: c.last4().to_string(),
                expiry: c.expiry().to_string(),
                holder: c.holder.to_string(),
            }),
            token: p.token.as_deref().map(str::to_string),
            events: p
                .events
                .iter()
                .map(|e| StoredEvent {
                    status: e.st.status(),
                    code: e.st.code().map(str::to_string),
                    at: e.at,
                })
                .collect(),
            refunds: p
                .refunds
                .iter()
                .map(|r| StoredRefund {
                    id: r.id.to_string(),
                    created: r.created,
                    amount: r.amount,
                    status: r.status,
                    settle_at: r.settle_at,
                    settle_days: r.settle_days,
                })
                .collect(),
        }
    }

    pub fn into_rec(self) -> Result<PayRec, String> {
        let id = Id::parse(&self.id).ok_or_else(|| format!("bad payment id {:?}", self.id))?;
        let events = self
            .events
            .iter()
            .map(|e| {
                Ok(EventRec {
                    st: st_of(e.status, e.code.as_deref())?,
                    at: e.at,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let st = events
            .last()
            .map(|e| e.st)
            .ok_or_else(|| format!("payment {} has no events", self.id))?;
        let card = match self.card {
            None => None,
            Some(c) => {
                let brand = super::data::Brand::parse(&c.brand)
                    .ok_or_else(|| format!("bad card brand {:?}", c.brand))?;
                let card_type = CardType::parse(&c.card_type)
                    .ok_or_else(|| format!("bad card type {:?}", c.card_type))?;
                Some(Box::new(
                    CardRec::new(brand, card_type, &c.first6, &c.last4, &c.expiry, &c.holder)
                        .ok_or_else(|| format!("bad card on payment {}", self.id))?,
                ))
            }
        };
        let metadata = match self.metadata {
            None => None,
            Some(map) => Some(
                map.iter()
                    .map(|(k, v)| {
                        MetaVal::from_value(v)
                            .map(|v| (Box::from(k.as_str()), v))
                            .ok_or_else(|| format!("bad metadata value for {k}"))
                    })
                    .collect::<Result<Vec<_>, String>>()?
                    .into_boxed_slice(),
            ),
        };
        let refunds = self
            .refunds
            .into_iter()
            .map(|r| {
                Ok(RefundRec {
                    id: Id::parse(&r.id).ok_or_else(|| format!("bad refund id {:?}", r.id))?,
                    created: r.created,
                    amount: r.amount,
                    status: r.status,
                    settle_at: r.settle_at,
                    settle_days: r.settle_days,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(PayRec {
            id,
            created: self.created,
            amount: self.amount,
            reference: self.reference.into(),
            description: Arc::from(self.description),
            email: self.email.map(Into::into),
            return_url: Arc::from(self.return_url),
            language: Language::parse(&self.language).unwrap_or(Language::En),
            provider: Provider::parse(&self.provider).unwrap_or(Provider::Sandbox),
            st,
            delayed_capture: self.delayed_capture,
            moto: self.moto,
            disputed: self.disputed,
            dispute: match self.dispute {
                Some(d) => Some(Box::new(d.into_rec()?)),
                None => None,
            },
            agreement: match self.agreement {
                Some(a) => Some(Box::new(
                    Id::parse(&a).ok_or_else(|| format!("bad agreement id {a:?}"))?,
                )),
                None => None,
            },
            settle_days: self.settle_days,
            metadata,
            card,
            token: self.token.map(Into::into),
            events,
            refunds,
        })
    }
}

/// The file's contents, or `None` when there is no file yet.
pub fn load(path: &Path) -> Result<Option<StateFile>, String> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let state: StateFile = serde_json::from_slice(&bytes)
        .map_err(|e| format!("{} is not a sandbox data file: {e}", path.display()))?;
    if state.format != FORMAT {
        return Err(format!(
            "{} has format {}, this sandbox reads format {FORMAT}",
            path.display(),
            state.format
        ));
    }
    Ok(Some(state))
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Write atomically: a temporary file beside the target, flushed, then renamed over it.
pub fn save(path: &Path, state: &StateFile) -> std::io::Result<()> {
    use std::io::Write;
    let bytes = serde_json::to_vec(state).map_err(std::io::Error::other)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = temp_path(path);
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::sandbox::seed::SeedPlan;

    #[test]
    fn a_payment_survives_the_round_trip() {
        let plan = SeedPlan::new(5, "account-1", "Licensing", 300, 1_767_225_600_000);
        for p in plan.generate() {
            let stored = StoredPayment::from_rec(&p);
            let json = serde_json::to_string(&stored).unwrap();
            let back: StoredPayment = serde_json::from_str(&json).unwrap();
            assert_eq!(back.into_rec().unwrap(), p);
        }
    }

    #[test]
    fn saves_atomically_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sandbox.json");
        assert!(load(&path).unwrap().is_none());
        let state = StateFile {
            format: FORMAT,
            anchor: 1,
            random_seed: 2,
            clock_offset_ms: 3,
            accounts: vec![],
        };
        save(&path, &state).unwrap();
        assert!(!temp_path(&path).exists());
        let back = load(&path).unwrap().unwrap();
        assert_eq!(
            (back.anchor, back.random_seed, back.clock_offset_ms),
            (1, 2, 3)
        );
        std::fs::write(&path, b"{").unwrap();
        assert!(load(&path).is_err());
    }
}
