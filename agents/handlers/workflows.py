"""Workflows defined in the manifest."""

from agents.manifest import workflow

workflow(
    "boot_sequence",
    "Bring-up checks of a host: health first (critical), then inventory, security posture and capacity.",
    [
        {"agent": "application", "action": "health", "critical": True},
        {"agent": "application", "action": "config_report"},
        {"agent": "kernel", "action": "info"},
        {"agent": "kernel", "action": "sysctl_read"},
        {"agent": "storage", "action": "disk_usage"},
        {"agent": "networking", "action": "interfaces"},
        {"agent": "networking", "action": "listening"},
        {"agent": "security", "action": "access_control"},
        {"agent": "security", "action": "firewall"},
        {"agent": "security", "action": "integrity_survey"},
        {"agent": "security", "action": "sovereign_suite"},
        {"agent": "scalability", "action": "queue_depth"},
    ],
)

workflow(
    "security_review",
    "Security posture: access, encryption, firewall, audit log, integrity, threats.",
    [
        {"agent": "security", "action": "access_control"},
        {"agent": "security", "action": "encryption"},
        {"agent": "security", "action": "firewall"},
        {"agent": "security", "action": "audit_review", "critical": True},
        {"agent": "security", "action": "integrity_survey"},
        {"agent": "security", "action": "threat_detection"},
    ],
)
