//! Amazon Resource Names, split into their parts: the one parser for the role ARNs accounts
//! name and the identity ARNs STS reports.

/// `arn:<partition>:<service>:<region>:<account>:<resource>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arn<'a> {
    pub partition: &'a str,
    pub service: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    /// Everything after the fifth colon, e.g. `role/path/name` or `assumed-role/role/session`.
    pub resource: &'a str,
}

impl<'a> Arn<'a> {
    /// Splits `text`, or `None` when it is not an ARN of an `aws*` partition.
    pub fn parse(text: &'a str) -> Option<Self> {
        let mut parts = text.splitn(6, ':');
        let (
            Some("arn"),
            Some(partition),
            Some(service),
            Some(region),
            Some(account),
            Some(resource),
        ) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        )
        else {
            return None;
        };
        partition.starts_with("aws").then_some(Self {
            partition,
            service,
            region,
            account,
            resource,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_into_its_parts() {
        assert_eq!(
            Arn::parse("arn:aws-cn:sts::111111111111:assumed-role/op/session:x"),
            Some(Arn {
                partition: "aws-cn",
                service: "sts",
                region: "",
                account: "111111111111",
                resource: "assumed-role/op/session:x",
            })
        );
        assert_eq!(Arn::parse("arn:other:iam::1:role/x"), None);
        assert_eq!(Arn::parse("not-an-arn"), None);
        assert_eq!(Arn::parse("arn:aws:iam::123"), None);
    }
}
