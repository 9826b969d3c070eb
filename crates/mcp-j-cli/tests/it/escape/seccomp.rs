//! The seccomp allowlist (issue 7): calls it names as refused answer EPERM, calls it does
//! not list answer ENOSYS (so programs fall back), and the calls it allows only with some
//! arguments refuse the others — personas, netlink protocols, IP protocols, the terminal
//! line-discipline ioctl. Each test has positive controls beside it: the same call with
//! ordinary arguments works in the same jail.

use super::expect_denied_table;
use crate::common::{Failures, sandbox_test, test_name};

#[test]
fn calls_the_allowlist_refuses_by_name_get_eperm() {
    sandbox_test(test_name!(), &[], |run| {
        let mut table: Vec<(Vec<&str>, &[&str])> = vec![
            // Each would succeed without the filter on this kernel (6.15+ for
            // open_tree_attr), or fail with an errno other than EPERM.
            (vec!["syscall", "fanotify-init"], &["EPERM"]),
            (vec!["syscall", "memfd-secret"], &["EPERM"]),
            (vec!["syscall", "listmount"], &["EPERM"]),
            (vec!["syscall", "statmount"], &["EPERM"]),
            (vec!["syscall", "open-tree-attr"], &["EPERM"]),
            (vec!["syscall", "quotactl-fd"], &["EPERM"]),
        ];
        if cfg!(target_arch = "x86_64") {
            table.push((vec!["syscall", "modify-ldt"], &["EPERM"]));
        }
        expect_denied_table(run, &table);
        // Positive control: an allowlisted call in the same kind of child.
        run.attack(&["control", "syscall", "getppid"]).check_ok().unwrap();
    });
}

#[test]
fn calls_outside_the_allowlist_get_enosys() {
    sandbox_test(test_name!(), &[], |run| {
        let table: Vec<(Vec<&str>, &[&str])> = vec![
            // The kernel alone answers 0 here: ENOSYS can only come from the filter.
            (vec!["syscall", "get-mempolicy"], &["ENOSYS"]),
            // A number no kernel has yet: what the next kernel's new call gets.
            (vec!["syscall", "unknown"], &["ENOSYS"]),
        ];
        expect_denied_table(run, &table);
        run.attack(&["control", "syscall", "getppid"]).check_ok().unwrap();
    });
}

#[test]
fn only_the_default_persona() {
    sandbox_test(test_name!(), &[], |run| {
        let table: Vec<(Vec<&str>, &[&str])> = vec![
            (vec!["personality", "read-implies-exec"], &["EPERM"]),
            (vec!["personality", "addr-no-randomize"], &["EPERM"]),
            (vec!["personality", "linux32"], &["EPERM"]),
        ];
        expect_denied_table(run, &table);
        // Positive controls: the query and the default persona itself.
        let mut f = Failures::new();
        for persona in ["query", "linux"] {
            f.check(
                &format!("personality {persona}"),
                run.attack(&["control", "personality", persona]).check_ok(),
            );
        }
        f.assert_none();
    });
}

#[test]
fn netlink_is_routing_only_and_ip_is_tcp_and_udp() {
    sandbox_test(test_name!(), &[], |run| {
        let mut table: Vec<(Vec<&str>, &[&str])> = Vec::new();
        for refused in [
            "netlink-xfrm",
            "netlink-audit",
            "netlink-netfilter",
            "netlink-connector",
            "netlink-kobject-uevent",
            "netlink-sock-diag",
            "netlink-generic",
            "inet-mptcp",
            "inet6-mptcp",
            "inet-udplite",
            "inet6-udplite",
        ] {
            table.push((vec!["socket", refused], &["EPERM"]));
        }
        expect_denied_table(run, &table);
        // Positive controls: routing netlink, TCP and UDP by default and by number.
        let mut f = Failures::new();
        for ok in [
            "netlink-route",
            "inet-tcp",
            "inet6-tcp",
            "inet-tcp-by-number",
            "inet-udp-by-number",
            "unix",
        ] {
            f.check(
                &format!("socket {ok}"),
                run.attack(&["control", "socket", ok]).check_ok(),
            );
        }
        f.assert_none();
    });
}

#[test]
fn the_line_discipline_cannot_be_switched() {
    sandbox_test(test_name!(), &[], |run| {
        // On a pty of its own when the jail has /dev/ptmx, else on /dev/null, where the
        // kernel alone would say ENOTTY: EPERM is the filter's answer either way.
        run.attack(&["tiocsetd"]).assert_denied(&["EPERM"]);
        // Positive control: an ordinary ioctl on the same descriptor.
        run.attack(&["control", "ioctl-fionbio"]).check_ok().unwrap();
    });
}

#[test]
fn ioctls_outside_the_allowlist_get_enotty() {
    sandbox_test(test_name!(), &[], |run| {
        // The kernel alone answers SIOCGIFMETRIC for anyone: ENOTTY is the filter's.
        run.attack(&["ioctl-socket", "gifmetric"]).assert_denied(&["ENOTTY"]);
        // Positive control: the lookup `if_nametoindex` makes, on the same kind of socket.
        run.attack(&["control", "ioctl-socket", "gifindex"]).check_ok().unwrap();
    });
}
