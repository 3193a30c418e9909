//! Accounts: isolated subject spaces.
//!
//! Every client is bound to one account, and a publish only reaches subscriptions in the
//! same account's index. Without an `accounts` block every client is in the global account
//! `$G`. Imports, exports, limits and users per account come with the accounts issue; they
//! will hang off this struct.

use crate::client::subscription::Subscription;
use crate::sublist::Sublist;

/// Name of the global account.
pub const GLOBAL_ACCOUNT: &str = "$G";
/// Default name of the system account.
pub const SYSTEM_ACCOUNT: &str = "$SYS";

/// One account.
pub struct Account {
    /// Account name.
    pub name: String,
    /// The account's subject index.
    pub sublist: Sublist<Subscription>,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Account {
    /// A new, empty account.
    pub fn new(name: &str, cache: bool) -> Self {
        Account {
            name: name.to_string(),
            sublist: Sublist::with_cache(cache),
        }
    }
}
