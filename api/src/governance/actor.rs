//! Who a write is attributed to, as stored on rows and in access and issue logs.

use crate::security::auth::Principal;

#[derive(Clone, Debug)]
pub struct Actor {
    pub agent_id: String,
    pub client_id: String,
    pub client_name: Option<String>,
    pub parent_client_id: Option<String>,
    pub child_client_id: Option<String>,
}

impl From<&Principal> for Actor {
    fn from(p: &Principal) -> Self {
        Actor {
            agent_id: p.agent_id(),
            client_id: p.effective_client_id(),
            client_name: p.client_name.clone(),
            parent_client_id: p.parent_client_id.clone(),
            child_client_id: p.child_client_id.clone(),
        }
    }
}
