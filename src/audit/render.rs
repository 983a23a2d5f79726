//! The audit as a person reads it: one table per cluster, then the summary line.

use std::fmt::Write;

use super::{AuditReport, ClusterAudit, PathReport, Summary};

/// Every cluster's table, then the summary line.
pub fn table(report: &AuditReport) -> String {
    let mut out = String::new();
    for cluster in &report.clusters {
        cluster_table(&mut out, cluster);
        out.push('\n');
    }
    for note in &report.notes {
        let _ = writeln!(out, "note: {note}");
    }
    out.push_str(&summary_line(&report.summary));
    out.push('\n');
    out
}

/// `audit: 4 clusters (0 unreadable), 21 paths (19 active: ...), 2 shared paths (2 beyond node
/// groups), 1 self-declared paths (1 beyond node groups), 1 clusters without audit logging`.
pub fn summary_line(summary: &Summary) -> String {
    let by_class = summary
        .by_class
        .iter()
        .map(|(class, n)| format!("{class} {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "audit: {} clusters ({} unreadable), {} paths ({} active: {by_class}), {} shared paths ({} beyond node groups), {} self-declared paths ({} beyond node groups), {} clusters without audit logging",
        summary.clusters,
        summary.unreadable,
        summary.paths,
        summary.active_paths,
        summary.shared_paths,
        summary.shared_beyond_node_groups,
        summary.self_declared_paths,
        summary.self_declared_beyond_node_groups,
        summary.without_audit_logging
    )
}

fn cluster_table(out: &mut String, cluster: &ClusterAudit) {
    let _ = write!(out, "cluster {} ({})", cluster.cluster, cluster.region);
    if let Some(role) = &cluster.role_arn {
        let _ = write!(out, " as {role}");
    }
    if let Some(error) = &cluster.error {
        let _ = writeln!(out, ": UNREADABLE: {error}");
        return;
    }
    let _ = write!(
        out,
        "  mode {}",
        cluster.authentication_mode.as_deref().unwrap_or("?")
    );
    if let Some(logging) = &cluster.logging {
        let on = |b: bool| if b { "on" } else { "OFF" };
        let _ = write!(
            out,
            "  logging: audit {}, authenticator {}",
            on(logging.audit),
            on(logging.authenticator)
        );
        if !logging.fixed.is_empty() {
            let _ = write!(
                out,
                "  (--fix-logging enabled {}, update {})",
                logging.fixed.join(", "),
                logging.update_id.as_deref().unwrap_or("?")
            );
        }
        if let Some(e) = &logging.fix_error {
            let _ = write!(out, "  (--fix-logging failed: {e})");
        }
    }
    out.push('\n');
    for note in &cluster.notes {
        let _ = writeln!(out, "  note: {note}");
    }
    let header = [
        "CLASS",
        "ACTIVE",
        "SOURCE",
        "PRINCIPAL",
        "USERNAME",
        "GRANTS",
    ];
    let rows: Vec<[String; 6]> = cluster.paths.iter().map(row).collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut line = |cells: &[String]| {
        let mut text = String::from(" ");
        for (i, cell) in cells.iter().enumerate() {
            text.push(' ');
            if i + 1 == cells.len() {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<width$}", width = widths[i]);
            }
        }
        let _ = writeln!(out, "{}", text.trim_end());
    };
    line(&header.map(String::from));
    for row in &rows {
        line(row);
    }
    // Why each finding fails, with the fix where there is one.
    for path in cluster.paths.iter().filter(|p| p.is_finding()) {
        let _ = writeln!(
            out,
            "  ! {} {} ({}): {}",
            path.class.as_str(),
            path.principal,
            path.source.as_str(),
            path.why
        );
    }
}

fn row(path: &PathReport) -> [String; 6] {
    let class = if path.is_finding() {
        format!("{}!", path.class.as_str())
    } else {
        path.class.as_str().to_owned()
    };
    let active = if path.active { "yes" } else { "no" };
    let source = match &path.entry_type {
        Some(t) if t != "STANDARD" => format!("{} {t}", path.source.as_str()),
        _ => path.source.as_str().to_owned(),
    };
    let mut grants = path.groups.join(",");
    for policy in &path.access_policies {
        let name = policy
            .policy_arn
            .rsplit('/')
            .next()
            .unwrap_or(&policy.policy_arn);
        let scope = if policy.namespaces.is_empty() {
            policy.scope.clone()
        } else {
            format!("{}:{}", policy.scope, policy.namespaces.join(","))
        };
        if !grants.is_empty() {
            grants.push(' ');
        }
        let _ = write!(grants, "+{name}({scope})");
    }
    if grants.is_empty() {
        grants.push('-');
    }
    if let Some(reason) = &path.inactive_reason {
        let _ = write!(grants, "  [{reason}]");
    }
    let username = if path.username.is_empty() {
        "-".to_owned()
    } else {
        path.username.clone()
    };
    [
        class,
        active.to_owned(),
        source,
        path.principal.clone(),
        username,
        grants,
    ]
}
