//! The platform client cache: one client per service, kept so that connections and OAuth2
//! tokens are reused, and made again once the service's settings change. What a client is
//! made from (and which addresses it may call) is the service's business: `ClientSource`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::client::PaymentPlatform;
use crate::config::Config;

/// Something a platform client is made from: a service account, as `services` holds it.
pub trait ClientSource {
    type Error;

    /// Which service this is, and a stamp of its settings: a client made from older settings
    /// is not reused.
    fn cache_key(&self) -> (i64, i64);

    /// A new client from the current settings.
    fn make_client(&self, config: &Config) -> Result<Arc<dyn PaymentPlatform>, Self::Error>;
}

/// A client kept, with the stamp of the settings it was made from.
type Kept = (i64, Arc<dyn PaymentPlatform>);

/// Platform clients, one per service.
#[derive(Default)]
pub struct Platforms {
    clients: RwLock<HashMap<i64, Kept>>,
}

impl Platforms {
    /// The client for `source`, made from its current settings when the one kept is older.
    pub fn client<S: ClientSource>(
        &self,
        config: &Config,
        source: &S,
    ) -> Result<Arc<dyn PaymentPlatform>, S::Error> {
        let (id, version) = source.cache_key();
        if let Ok(clients) = self.clients.read() {
            if let Some((kept, client)) = clients.get(&id) {
                if *kept == version {
                    return Ok(client.clone());
                }
            }
        }
        let client = source.make_client(config)?;
        if let Ok(mut clients) = self.clients.write() {
            clients.insert(id, (version, client.clone()));
        }
        Ok(client)
    }
}
