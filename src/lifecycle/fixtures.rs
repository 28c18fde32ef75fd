//! Values the lifecycle tests share.

use jiff::Timestamp;

use crate::resources::{Account, AccountSpec, AccountStatus, Lease, LeaseSpec, LeaseStatus};

pub const DAY: i64 = 86_400;

/// The instant `s` seconds after the Unix epoch.
pub fn ts(s: i64) -> Timestamp {
    Timestamp::from_second(s).unwrap()
}

/// A lease spec for principal `alice`, with every term left to the policy.
pub fn spec() -> LeaseSpec {
    LeaseSpec::for_principal("alice")
}

/// A lease named `l` with `spec` and `status`.
pub fn lease(spec: LeaseSpec, status: Option<LeaseStatus>) -> Lease {
    let mut lease = Lease::new("l", spec);
    lease.status = status;
    lease
}

/// Pool account 123456789012 (its admin role named), generation 1, with `status`.
pub fn account(status: Option<AccountStatus>) -> Account {
    let mut account = Account::new(
        "123456789012",
        AccountSpec::with_admin_role("123456789012", "arn:aws:iam::123456789012:role/Admin"),
    );
    account.metadata.generation = Some(1);
    account.status = status;
    account
}
