//! The payments search form as typed: read from a raw query string, written back as one for
//! links (pages, sorting), and whether anything beyond the defaults was asked for.

use serde::Serialize;

/// The form as typed, for showing it again and for building links (pages, sorting).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Form {
    pub q: String,
    pub services: Vec<String>,
    pub reference: String,
    pub reference_match: String,
    pub email: String,
    pub cardholder: String,
    pub last4: String,
    pub first6: String,
    pub brand: String,
    pub statuses: Vec<String>,
    pub period: String,
    pub date_field: String,
    pub from_date: String,
    pub from_time: String,
    pub to_date: String,
    pub to_time: String,
    pub min_amount: String,
    pub max_amount: String,
    pub meta_key: String,
    pub meta_value: String,
    pub case_reference: String,
    /// An agreement id: only payments taken under that recurring agreement.
    pub agreement: String,
    pub attention: bool,
    pub sort: String,
    pub after: String,
    pub before: String,
}

impl Form {
    /// Read a raw query string (without the `?`). Unknown names are ignored; a repeated
    /// single-valued name keeps its last value.
    pub fn from_query(raw: &str) -> Form {
        let mut f = Form::default();
        for (name, value) in url::form_urlencoded::parse(raw.as_bytes()) {
            let v = value.into_owned();
            match name.as_ref() {
                "q" => f.q = v,
                "service" => push_nonempty(&mut f.services, v),
                "reference" => f.reference = v,
                "reference_match" => f.reference_match = v,
                "email" => f.email = v,
                "cardholder" => f.cardholder = v,
                "last4" => f.last4 = v,
                "first6" => f.first6 = v,
                "brand" => f.brand = v,
                "status" => push_nonempty(&mut f.statuses, v),
                "period" => f.period = v,
                "date_field" => f.date_field = v,
                "from_date" => f.from_date = v,
                "from_time" => f.from_time = v,
                "to_date" => f.to_date = v,
                "to_time" => f.to_time = v,
                "min_amount" => f.min_amount = v,
                "max_amount" => f.max_amount = v,
                "meta_key" => f.meta_key = v,
                "meta_value" => f.meta_value = v,
                "case_reference" => f.case_reference = v,
                "agreement" => f.agreement = v,
                "attention" => f.attention = matches!(v.as_str(), "yes" | "true" | "on" | "1"),
                "sort" => f.sort = v,
                "after" => f.after = v,
                "before" => f.before = v,
                _ => {}
            }
        }
        f
    }

    /// The query string for this form (without page cursors unless set), for links.
    pub fn to_query(&self) -> String {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        let mut one = |name: &str, value: &str| {
            if !value.is_empty() {
                s.append_pair(name, value);
            }
        };
        one("q", &self.q);
        for v in &self.services {
            one("service", v);
        }
        one("reference", &self.reference);
        one("reference_match", &self.reference_match);
        one("email", &self.email);
        one("cardholder", &self.cardholder);
        one("last4", &self.last4);
        one("first6", &self.first6);
        one("brand", &self.brand);
        for v in &self.statuses {
            one("status", v);
        }
        one("period", &self.period);
        one("date_field", &self.date_field);
        one("from_date", &self.from_date);
        one("from_time", &self.from_time);
        one("to_date", &self.to_date);
        one("to_time", &self.to_time);
        one("min_amount", &self.min_amount);
        one("max_amount", &self.max_amount);
        one("meta_key", &self.meta_key);
        one("meta_value", &self.meta_value);
        one("case_reference", &self.case_reference);
        one("agreement", &self.agreement);
        one("attention", if self.attention { "yes" } else { "" });
        one("sort", &self.sort);
        one("after", &self.after);
        one("before", &self.before);
        s.finish()
    }

    /// The same search without a page position (the first page).
    pub fn first_page(&self) -> Form {
        Form {
            after: String::new(),
            before: String::new(),
            ..self.clone()
        }
    }

    /// Whether anything beyond the defaults was asked for.
    pub fn is_filtered(&self) -> bool {
        let blank = Form {
            sort: self.sort.clone(),
            ..Form::default()
        };
        self.first_page() != blank
    }

    /// Whether a filter inside the Filters panel is set (the search box, the order and the
    /// page position are outside it): the panel opens only then, so a box search shows its
    /// results straight away.
    pub fn panel_filters_set(&self) -> bool {
        let outside = Form {
            q: self.q.clone(),
            sort: self.sort.clone(),
            after: self.after.clone(),
            before: self.before.clone(),
            ..Form::default()
        };
        *self != outside
    }
}

fn push_nonempty(list: &mut Vec<String>, v: String) {
    if !v.trim().is_empty() && list.len() < 50 {
        list.push(v.trim().to_string());
    }
}
