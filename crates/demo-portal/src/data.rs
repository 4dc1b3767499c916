//! The portal's customers and everything it keeps about them, in memory (it is a demo
//! product: a restart starts it afresh). Full card numbers, national ids, API tokens and
//! recovery codes are here in the clear on purpose, as in many real products; showing
//! that actas masks them is the point.

use std::collections::HashMap;

/// A loan and its terms.
#[derive(Debug, Clone)]
pub struct Loan {
    /// Its reference, e.g. `LA-77`.
    pub id: String,
    /// What it is for.
    pub purpose: String,
    /// The amount borrowed.
    pub amount: String,
    /// The interest rate.
    pub rate: String,
    /// The term.
    pub term: String,
    /// What is left to pay.
    pub balance: String,
}

/// A payment made.
#[derive(Debug, Clone)]
pub struct Payment {
    /// When (a date).
    pub date: String,
    /// How much.
    pub amount: String,
    /// Towards which loan.
    pub loan: String,
}

/// One customer.
#[derive(Debug, Clone)]
pub struct Customer {
    /// The id actas knows the account by.
    pub id: String,
    /// The password the customer signs in with.
    pub password: String,
    /// Their name.
    pub name: String,
    /// Contact email.
    pub email: String,
    /// Contact phone.
    pub phone: String,
    /// Shipping address.
    pub address: String,
    /// Whether they get email notifications.
    pub notifications: bool,
    /// VAT rate on invoices.
    pub tax_rate: String,
    /// The card on file, in full.
    pub card_number: String,
    /// National id (e.g. National Insurance number).
    pub national_id: String,
    /// API tokens for their accounting software.
    pub api_tokens: Vec<String>,
    /// Two-step sign-in recovery codes.
    pub recovery_codes: Vec<String>,
    /// Loans.
    pub loans: Vec<Loan>,
    /// Payments.
    pub payments: Vec<Payment>,
    /// Uploaded documents.
    pub documents: Vec<String>,
    /// When the loan agreement was signed, if it was.
    pub agreement_signed: Option<String>,
    /// What happened on the account, newest last, naming who did it.
    pub activity: Vec<String>,
    /// The customer's consent to support access: allowed, code_required or revoked.
    pub consent: String,
    /// Receipts of signed changes support made (`Actas-Receipt`), newest last: what
    /// changed, and the receipt the customer can check.
    pub receipts: Vec<(String, String)>,
}

/// Every customer, by id.
pub type Customers = HashMap<String, Customer>;

fn customer(id: &str, name: &str, email: &str, seed: u32) -> Customer {
    Customer {
        id: id.into(),
        password: format!("{id}-demo"),
        name: name.into(),
        email: email.into(),
        phone: format!("+44 20 7946 0{seed:03}"),
        address: format!("{seed} Market Street, Leeds LS1 {seed}AB"),
        notifications: true,
        tax_rate: "20%".into(),
        card_number: format!("4111 1111 1111 {:04}", 4242 + seed),
        national_id: format!(
            "QQ {:02} {:02} {:02} C",
            seed % 100,
            (seed * 7) % 100,
            (seed * 13) % 100
        ),
        api_tokens: vec![format!("pt_live_{id}_8f3a9c2e7b1d4f60")],
        recovery_codes: vec![
            format!("{id}-rc-7741-2290"),
            format!("{id}-rc-5518-0034"),
            format!("{id}-rc-9902-6671"),
        ],
        loans: vec![
            Loan {
                id: format!("LA-{}", 70 + seed),
                purpose: "Delivery van".into(),
                amount: "£24,000".into(),
                rate: "6.9% APR".into(),
                term: "48 months".into(),
                balance: "£18,450".into(),
            },
            Loan {
                id: format!("LA-{}", 90 + seed),
                purpose: "Working capital".into(),
                amount: "£10,000".into(),
                rate: "8.4% APR".into(),
                term: "24 months".into(),
                balance: "£6,120".into(),
            },
        ],
        payments: vec![
            Payment {
                date: "2026-10-01".into(),
                amount: "£540.00".into(),
                loan: format!("LA-{}", 70 + seed),
            },
            Payment {
                date: "2026-11-01".into(),
                amount: "£540.00".into(),
                loan: format!("LA-{}", 70 + seed),
            },
        ],
        documents: vec!["2025 accounts.pdf".into()],
        agreement_signed: None,
        activity: vec![],
        consent: "allowed".into(),
        receipts: vec![],
    }
}

/// The demo's customers: an ordinary one, a sensitive one and one that revoked consent.
pub fn seed() -> Customers {
    [
        customer("acme", "Acme Co", "sarah@acme.com", 1),
        customer("globex", "Globex Ltd", "hank@globex.example", 2),
        Customer {
            consent: "revoked".into(),
            ..customer("initech", "Initech", "bill@initech.example", 3)
        },
    ]
    .into_iter()
    .map(|c| (c.id.clone(), c))
    .collect()
}
