//! Roles and per-class permissions: who may read, create, update, delete and sign the
//! records of each class, and which fields only some roles may set (approvals).
//!
//! The defaults follow the seeds' Security sections (SPEC §6.1): auditors read everything
//! and write nothing; deletes are for managers and admins; `SystemAudit` (GxP) is
//! append-only; only managers or QA reviewers approve a `ValidationLog`; only approved
//! staff revise a `DocumentControlLog`; training records are kept by authorised staff;
//! HIPAA access logs are hidden from field staff. The table in docs/API.md is this file.

use std::fmt;

/// A role a user acts in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Runs the app: users, schema, and every record operation but signing for others.
    Admin,
    /// Manages the quality system; approves.
    Manager,
    /// Coordinates day-to-day records.
    Coordinator,
    /// Enters records in the field.
    FieldStaff,
    /// Reads everything, writes nothing.
    Auditor,
    /// Reviews and approves.
    QaReviewer,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 6] = [
        Role::Admin,
        Role::Manager,
        Role::Coordinator,
        Role::FieldStaff,
        Role::Auditor,
        Role::QaReviewer,
    ];

    /// The role's name as stored in `_User.role`.
    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Manager => "manager",
            Role::Coordinator => "coordinator",
            Role::FieldStaff => "field_staff",
            Role::Auditor => "auditor",
            Role::QaReviewer => "qa_reviewer",
        }
    }

    /// The role with this name.
    pub fn from_name(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == name)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of roles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Roles(u8);

impl Roles {
    /// No role.
    pub const NONE: Roles = Roles(0);

    /// The given roles.
    pub fn of(roles: &[Role]) -> Roles {
        Roles(roles.iter().fold(0, |acc, r| acc | r.bit()))
    }

    /// Every role.
    pub fn all() -> Roles {
        Roles::of(&Role::ALL)
    }

    /// Every role but these.
    pub fn all_but(roles: &[Role]) -> Roles {
        Roles(Roles::all().0 & !Roles::of(roles).0)
    }

    /// Whether `role` is in the set.
    pub fn contains(self, role: Role) -> bool {
        self.0 & role.bit() != 0
    }

    /// The names of the roles in the set.
    pub fn names(self) -> Vec<&'static str> {
        Role::ALL
            .into_iter()
            .filter(|r| self.contains(*r))
            .map(Role::name)
            .collect()
    }
}

/// An operation on a class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// Get or query.
    Read,
    /// Create a record.
    Create,
    /// Update a record.
    Update,
    /// Delete a record.
    Delete,
    /// Sign a record version.
    Sign,
}

impl Op {
    /// Every operation.
    pub const ALL: [Op; 5] = [Op::Read, Op::Create, Op::Update, Op::Delete, Op::Sign];

    /// The operation's name (`read`, `create`…), as recorded in `access.denied` events.
    pub fn name(self) -> &'static str {
        match self {
            Op::Read => "read",
            Op::Create => "create",
            Op::Update => "update",
            Op::Delete => "delete",
            Op::Sign => "sign",
        }
    }
}

/// One class's rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassRules {
    /// Who may get and query.
    pub read: Roles,
    /// Who may create.
    pub create: Roles,
    /// Who may update.
    pub update: Roles,
    /// Who may delete.
    pub delete: Roles,
    /// Who may sign.
    pub sign: Roles,
    /// Fields only some roles may set, on create or update (approvals).
    pub guarded: Vec<(&'static str, Roles)>,
}

/// Roles that write records by default: everyone but auditors.
fn writers() -> Roles {
    Roles::all_but(&[Role::Auditor])
}

impl Default for ClassRules {
    fn default() -> Self {
        use Role::*;
        ClassRules {
            read: Roles::all(),
            create: writers(),
            update: writers(),
            delete: Roles::of(&[Admin, Manager]),
            sign: Roles::of(&[Admin, Manager, Coordinator, QaReviewer]),
            guarded: Vec::new(),
        }
    }
}

impl ClassRules {
    /// Who may perform `op`.
    pub fn roles(&self, op: Op) -> Roles {
        match op {
            Op::Read => self.read,
            Op::Create => self.create,
            Op::Update => self.update,
            Op::Delete => self.delete,
            Op::Sign => self.sign,
        }
    }

    /// Append-only: created, never changed or deleted.
    fn append_only(mut self) -> Self {
        self.update = Roles::NONE;
        self.delete = Roles::NONE;
        self
    }
}

/// The rules for the users class `_User`: everyone with a role reads it; admins create,
/// change and deactivate accounts (a user may change their own non-role fields, which
/// the request layer allows separately); nobody signs users.
fn user_rules() -> ClassRules {
    use Role::*;
    ClassRules {
        read: Roles::all(),
        create: Roles::of(&[Admin]),
        update: Roles::of(&[Admin]),
        delete: Roles::of(&[Admin]),
        sign: Roles::NONE,
        guarded: vec![("role", Roles::of(&[Admin]))],
    }
}

/// The default rules for `class` of `app`.
pub fn rules(app: &str, class: &str) -> ClassRules {
    use Role::*;
    let base = ClassRules::default();
    let staff = Roles::of(&[Admin, Manager, Coordinator, QaReviewer]);
    let approvers = Roles::of(&[Manager, QaReviewer]);
    if class == "_User" {
        return user_rules();
    }
    match (app, class) {
        // GxP: approvals by managers or QA; training records edited by coordinators and
        // reviewers; SystemAudit append-only.
        ("gxp", "ComplianceLog") => ClassRules {
            update: staff,
            guarded: vec![("reviewStatus", approvers)],
            ..base
        },
        ("gxp", "ValidationLog") => ClassRules {
            create: staff,
            update: staff,
            guarded: vec![("approvedBy", approvers)],
            ..base
        },
        ("gxp", "TrainingRecord") => ClassRules {
            create: staff,
            update: staff,
            guarded: vec![("certifiedBy", approvers)],
            ..base
        },
        ("gxp", "SystemAudit") => base.append_only(),
        // ISO 9001: approved users revise controlled documents; CAPA closure by owners'
        // managers and coordinators.
        ("iso9001", "DocumentControlLog") => ClassRules {
            create: approvers,
            update: approvers,
            ..base
        },
        ("iso9001", "CAPA") => ClassRules {
            update: staff,
            guarded: vec![("closureStatus", staff)],
            ..base
        },
        ("iso9001", "Audit") => ClassRules {
            create: staff,
            update: staff,
            ..base
        },
        // HIPAA: access logs and training hidden from field staff; access logs append-only;
        // audit users and agreements kept by reviewers.
        ("hipaa", "AccessLog") => ClassRules {
            read: Roles::all_but(&[FieldStaff]),
            ..base
        }
        .append_only(),
        ("hipaa", "TrainingRecord") => ClassRules {
            read: Roles::all_but(&[FieldStaff]),
            create: staff,
            update: staff,
            ..base
        },
        ("hipaa", "AuditUser") | ("hipaa", "BusinessAssociateAgreement") => ClassRules {
            create: approvers,
            update: approvers,
            ..base
        },
        ("hipaa", "AuditFinding") => ClassRules {
            guarded: vec![("status", approvers)],
            ..base
        },
        // Training: only authorised staff create or delete training evidence.
        ("training", "TrainingCourse")
        | ("training", "AttendanceLog")
        | ("training", "ExamScore")
        | ("training", "CertificateStorage") => ClassRules {
            create: Roles::of(&[Admin, Manager, Coordinator]),
            update: Roles::of(&[Admin, Manager, Coordinator]),
            delete: Roles::of(&[Admin, Manager, Coordinator]),
            ..base
        },
        // ISO 14001: managers approve (close) findings, coordinators update logs, field
        // staff add inspection entries; sites and the legal register are kept by staff.
        ("iso14001", "AuditFinding") => ClassRules {
            guarded: vec![("closed", Roles::of(&[Admin, Manager]))],
            ..base
        },
        ("iso14001", "AuditSite") | ("iso14001", "LegalRegister") => ClassRules {
            create: staff,
            update: staff,
            ..base
        },
        ("iso14001", "SpillKitLog") | ("iso14001", "AspectImpactLog") => ClassRules {
            update: staff,
            ..base
        },
        _ => base,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auditors_write_nothing_anywhere() {
        for (app, class) in [
            ("gxp", "ValidationLog"),
            ("gxp", "SystemAudit"),
            ("hipaa", "AccessLog"),
            ("training", "ExamScore"),
            ("iso9001", "CAPA"),
            ("iso14001", "SpillKitLog"),
            ("gxp", "_User"),
        ] {
            let r = rules(app, class);
            assert!(r.read.contains(Role::Auditor), "{app}.{class}");
            for op in [Op::Create, Op::Update, Op::Delete, Op::Sign] {
                assert!(!r.roles(op).contains(Role::Auditor), "{app}.{class} {op:?}");
            }
        }
    }

    #[test]
    fn system_audit_is_append_only_and_validation_approval_is_guarded() {
        let r = rules("gxp", "SystemAudit");
        assert_eq!(r.update, Roles::NONE);
        assert_eq!(r.delete, Roles::NONE);
        assert!(r.create.contains(Role::FieldStaff));
        let v = rules("gxp", "ValidationLog");
        let approvers = v
            .guarded
            .iter()
            .find(|(f, _)| *f == "approvedBy")
            .map(|(_, r)| *r);
        assert_eq!(
            approvers.map(|r| r.names()),
            Some(vec!["manager", "qa_reviewer"])
        );
    }

    #[test]
    fn role_names_round_trip() {
        for r in Role::ALL {
            assert_eq!(Role::from_name(r.name()), Some(r));
        }
        assert_eq!(Role::from_name("root"), None);
    }
}
