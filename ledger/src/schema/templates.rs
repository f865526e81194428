//! The five built-in apps, read from the seeds' "Schema:" prompt blocks (kept verbatim in
//! `templates/`).

use super::prompt;
use super::types::{ClassDef, SchemaError};

/// A built-in app: its name and the prompt block it comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Template {
    /// App name (`gxp`, `iso9001`, `hipaa`, `training`, `iso14001`).
    pub app: &'static str,
    /// What the seed is.
    pub title: &'static str,
    /// The seed's "Schema:" block, verbatim.
    pub prompt_schema: &'static str,
}

/// The five built-in apps, in seed order.
pub const BUILTIN: &[Template] = &[
    Template {
        app: "gxp",
        title: "GxP Compliance Log",
        prompt_schema: include_str!("templates/gxp.txt"),
    },
    Template {
        app: "iso9001",
        title: "ISO 9001 Quality Audit",
        prompt_schema: include_str!("templates/iso9001.txt"),
    },
    Template {
        app: "hipaa",
        title: "HIPAA Privacy Auditor",
        prompt_schema: include_str!("templates/hipaa.txt"),
    },
    Template {
        app: "training",
        title: "Training Attendance Log",
        prompt_schema: include_str!("templates/training.txt"),
    },
    Template {
        app: "iso14001",
        title: "ISO 14001 Environmental Audit",
        prompt_schema: include_str!("templates/iso14001.txt"),
    },
];

impl Template {
    /// The template's classes.
    pub fn classes(&self) -> Result<Vec<ClassDef>, SchemaError> {
        prompt::parse(self.prompt_schema)
    }

    /// The built-in template named `app`.
    pub fn named(app: &str) -> Option<&'static Template> {
        BUILTIN.iter().find(|t| t.app == app)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{AppSchema, FieldType, SchemaChange};

    #[test]
    fn every_builtin_app_parses_and_applies_with_the_seed_classes() {
        let expected: &[(&str, &[&str])] = &[
            (
                "gxp",
                &[
                    "ComplianceLog",
                    "ValidationLog",
                    "TrainingRecord",
                    "SystemAudit",
                ],
            ),
            (
                "iso9001",
                &["Audit", "DocumentControlLog", "NonConformance", "CAPA"],
            ),
            (
                "hipaa",
                &[
                    "AuditUser",
                    "AccessLog",
                    "BusinessAssociateAgreement",
                    "TrainingRecord",
                    "AuditFinding",
                ],
            ),
            (
                "training",
                &[
                    "TrainingCourse",
                    "AttendanceLog",
                    "ExamScore",
                    "CertificateStorage",
                ],
            ),
            (
                "iso14001",
                &[
                    "AuditSite",
                    "AspectImpactLog",
                    "SpillKitLog",
                    "LegalRegister",
                    "AuditFinding",
                ],
            ),
        ];
        for (app, classes) in expected {
            let t = Template::named(app).expect("template");
            let defs = t.classes().expect("parse");
            let mut schema = AppSchema::default();
            schema
                .apply(&SchemaChange::Define {
                    source: format!("template:{app}"),
                    classes: defs,
                })
                .expect("apply");
            let mut names: Vec<&str> = schema.classes.keys().map(String::as_str).collect();
            names.retain(|n| *n != "_User");
            let mut want = classes.to_vec();
            want.sort_unstable();
            assert_eq!(names, want, "{app}");
        }
    }

    #[test]
    fn field_details_follow_the_prompt_text() {
        let gxp = Template::named("gxp")
            .expect("gxp")
            .classes()
            .expect("parse");
        let v = gxp
            .iter()
            .find(|c| c.name == "ValidationLog")
            .expect("ValidationLog");
        assert!(v.fields["executedAt"].required);
        assert_eq!(v.fields["executedAt"].field_type, FieldType::Date);
        assert!(!v.fields["approvedBy"].required);
        assert_eq!(
            v.fields["approvedBy"].field_type,
            FieldType::Pointer {
                target_class: "_User".into()
            }
        );
        let hipaa = Template::named("hipaa")
            .expect("hipaa")
            .classes()
            .expect("parse");
        let au = hipaa
            .iter()
            .find(|c| c.name == "AuditUser")
            .expect("AuditUser");
        assert!(au.fields["email"].unique);
        let training = Template::named("training")
            .expect("t")
            .classes()
            .expect("parse");
        let cert = training
            .iter()
            .find(|c| c.name == "CertificateStorage")
            .expect("cert");
        assert_eq!(cert.fields["file"].field_type, FieldType::File);
    }
}
