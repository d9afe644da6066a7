//! The payer's side: the card page a payment's `next_url` leads to, and the test cards that
//! decide each outcome. Only the first six and last four digits of a card number are kept;
//! the full number lives in the request and nowhere else.

use std::sync::Arc;

use rocket::data::{Data, ToByteUnit};
use rocket::http::Status;
use rocket::{get, post, routes, Route, State};
use time::Date;

use super::account::Target;
use super::api::Reply;
use super::data::{date_of, Brand, CardRec, CardType, PayRec, St};
use super::shared::{Entry, Shared};

pub fn routes() -> Vec<Route> {
    routes![pay_page, pay_submit, pay_entry]
}

/// The test cards, for the README, the command's banner and the card page itself:
/// (number, brand, what happens).
pub const TEST_CARDS: &[(&str, &str, &str)] = &[
    (
        "4111111111111111",
        "Visa",
        "succeeds (with expiry 01/23: declined, P0010)",
    ),
    ("5555555555554444", "Mastercard", "succeeds"),
    ("378282246310005", "American Express", "succeeds"),
    ("4000000000000002", "Visa", "declined (failed, P0010)"),
    ("4000000000000119", "Visa", "provider error (error, P0050)"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Declined,
    Error,
}

/// What the sandbox's provider says to a card. Known test cards succeed; the decline and
/// error cards do what they say; an expired card (01/23 among them) is declined, and so is
/// any other card number.
pub fn decide(number: &str, month: u8, year: i32, today: Date) -> Outcome {
    let expired = (year, month) < (today.year(), u8::from(today.month()));
    match number {
        "4000000000000002" => Outcome::Declined,
        "4000000000000119" => Outcome::Error,
        _ if expired => Outcome::Declined,
        "4111111111111111" if (month, year) == (1, 2023) => Outcome::Declined,
        "4111111111111111" | "5555555555554444" | "378282246310005" => Outcome::Success,
        _ => Outcome::Declined,
    }
}

fn card_type_of(number: &str) -> CardType {
    match number {
        "4000000000000002" | "4000000000000119" => CardType::Debit,
        _ => CardType::Credit,
    }
}

fn luhn(digits: &str) -> bool {
    let mut sum = 0u32;
    for (i, b) in digits.bytes().rev().enumerate() {
        let mut d = u32::from(b - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum.is_multiple_of(10)
}

/// A valid card form, its number still whole (it goes no further than `decide`).
pub struct CardEntry {
    pub number: String,
    pub month: u8,
    pub year: i32,
    pub holder: String,
    pub email: Option<String>,
}

impl CardEntry {
    /// What is kept of the card.
    pub fn record(&self) -> Option<CardRec> {
        let brand = Brand::of_number(&self.number)?;
        let n = self.number.len();
        CardRec::new(
            brand,
            card_type_of(&self.number),
            self.number.get(..6)?,
            self.number.get(n - 4..)?,
            &format!("{:02}/{:02}", self.month, self.year.rem_euclid(100)),
            &self.holder,
        )
    }
}

type Form = Vec<(String, String)>;

fn field<'a>(form: &'a Form, name: &str) -> &'a str {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim())
        .unwrap_or("")
}

/// Check the card form; on failure, (field id, message) for each problem.
pub fn validate(form: &Form) -> Result<CardEntry, Vec<(&'static str, &'static str)>> {
    let mut problems = Vec::new();
    let number: String = field(form, "card_number")
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    let number_ok = (12..=19).contains(&number.len())
        && number.bytes().all(|b| b.is_ascii_digit())
        && luhn(&number)
        && Brand::of_number(&number).is_some();
    if !number_ok {
        problems.push(("card_number", "Enter a valid card number"));
    }
    let month = field(form, "expiry_month")
        .parse::<u8>()
        .ok()
        .filter(|m| (1..=12).contains(m));
    let year = field(form, "expiry_year")
        .parse::<i32>()
        .ok()
        .and_then(|y| match y {
            0..=99 => Some(2000 + y),
            2000..=2099 => Some(y),
            _ => None,
        });
    if month.is_none() || year.is_none() {
        problems.push(("expiry_month", "Enter a valid expiry date"));
    }
    let holder = field(form, "cardholder_name");
    if holder.is_empty() || holder.chars().count() > 255 {
        problems.push((
            "cardholder_name",
            "Enter the name as it appears on the card",
        ));
    }
    let cvc = field(form, "cvc");
    let cvc_len = if number.starts_with("34") || number.starts_with("37") {
        4
    } else {
        3
    };
    if cvc.len() != cvc_len || !cvc.bytes().all(|b| b.is_ascii_digit()) {
        problems.push(("cvc", "Enter a valid card security code"));
    }
    let email = field(form, "email");
    if !email.is_empty() && (!email.contains('@') || email.len() > 254) {
        problems.push(("email", "Enter a valid email address"));
    }
    match (problems.is_empty(), month, year) {
        (true, Some(month), Some(year)) => Ok(CardEntry {
            number,
            month,
            year,
            holder: holder.to_string(),
            email: (!email.is_empty()).then(|| email.to_string()),
        }),
        _ => Err(problems),
    }
}

/// HTML-escape a value for text or a double-quoted attribute.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

fn pounds(pence: i64) -> String {
    format!("£{}.{:02}", pence / 100, pence % 100)
}

fn layout(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
<title>{title} – Sandbox payments</title>\n\
<style>body{{font-family:Arial,sans-serif;max-width:40rem;margin:1rem auto;padding:0 1rem;line-height:1.4}}\
label,legend{{display:block;font-weight:bold;margin-top:1rem}}input{{font-size:1.1rem;padding:.3rem}}\
.error{{color:#b00}}.summary{{border:4px solid #b00;padding:.5rem 1rem}}button{{font-size:1.1rem;margin:1.5rem .5rem 0 0;padding:.4rem 1rem}}\
fieldset{{border:0;padding:0}}.inline label{{display:inline-block;font-weight:normal;margin-right:1rem}}</style>\n\
</head>\n<body>\n<header><p>Sandbox payment platform (test cards only)</p></header>\n<main id=\"main\">\n{body}\n</main>\n</body>\n</html>\n",
        title = esc(title),
    )
}

fn message_page(status: Status, title: &str, text: &str, link: Option<&str>) -> Reply {
    let link = link
        .map(|href| {
            format!(
                "<p><a href=\"{}\">Continue to the service</a></p>",
                esc(href)
            )
        })
        .unwrap_or_default();
    let body = format!("<h1>{}</h1>\n<p>{}</p>\n{link}", esc(title), esc(text));
    Reply::html(status, layout(title, &body))
}

/// The card form, with problems and the values to keep (never the card number or code).
fn card_form(
    token: &str,
    p: &PayRec,
    problems: &[(&'static str, &'static str)],
    form: &Form,
) -> String {
    let problem = |id: &str| problems.iter().find(|(f, _)| *f == id).map(|(_, m)| *m);
    let mut html = String::new();
    if !problems.is_empty() {
        html.push_str("<div class=\"summary\" role=\"alert\" tabindex=\"-1\">\n<h2>There is a problem</h2>\n<ul>\n");
        for (id, message) in problems {
            html.push_str(&format!(
                "<li><a href=\"#{id}\">{}</a></li>\n",
                esc(message)
            ));
        }
        html.push_str("</ul>\n</div>\n");
    }
    html.push_str(&format!(
        "<h1>Enter card details</h1>\n<p>{}</p>\n<p>Total amount: <strong>{}</strong></p>\n",
        esc(&p.description),
        esc(&pounds(p.amount))
    ));
    let keep = |name: &str| esc(field(form, name));
    let input = |id: &str, label: &str, attrs: &str, value: String| {
        let error = problem(id)
            .map(|m| {
                format!(
                    "<p class=\"error\" id=\"{id}-error\">Error: {}</p>\n",
                    esc(m)
                )
            })
            .unwrap_or_default();
        let described = if problem(id).is_some() {
            format!(" aria-describedby=\"{id}-error\" aria-invalid=\"true\"")
        } else {
            String::new()
        };
        format!(
            "<label for=\"{id}\">{label}</label>\n{error}<input id=\"{id}\" name=\"{id}\" {attrs}{described} value=\"{value}\">\n"
        )
    };
    html.push_str(&format!(
        "<form method=\"post\" action=\"/pay/{}\" novalidate>\n",
        esc(token)
    ));
    html.push_str(&input(
        "card_number",
        "Card number",
        "type=\"text\" inputmode=\"numeric\" autocomplete=\"cc-number\" spellcheck=\"false\"",
        String::new(),
    ));
    let expiry_error = problem("expiry_month")
        .map(|m| {
            format!(
                "<p class=\"error\" id=\"expiry-error\">Error: {}</p>\n",
                esc(m)
            )
        })
        .unwrap_or_default();
    html.push_str(&format!(
        "<fieldset{}>\n<legend>Expiry date</legend>\n<p id=\"expiry-hint\">For example, 04 30</p>\n{expiry_error}<div class=\"inline\">\
<label for=\"expiry_month\">Month</label> <input id=\"expiry_month\" name=\"expiry_month\" type=\"text\" inputmode=\"numeric\" autocomplete=\"cc-exp-month\" size=\"2\" value=\"{}\">\n\
<label for=\"expiry_year\">Year</label> <input id=\"expiry_year\" name=\"expiry_year\" type=\"text\" inputmode=\"numeric\" autocomplete=\"cc-exp-year\" size=\"4\" value=\"{}\">\n</div>\n</fieldset>\n",
        if expiry_error.is_empty() {
            " aria-describedby=\"expiry-hint\"".to_string()
        } else {
            " aria-describedby=\"expiry-hint expiry-error\"".to_string()
        },
        keep("expiry_month"),
        keep("expiry_year"),
    ));
    html.push_str(&input(
        "cardholder_name",
        "Name on card",
        "type=\"text\" autocomplete=\"cc-name\" spellcheck=\"false\"",
        keep("cardholder_name"),
    ));
    html.push_str(&input(
        "cvc",
        "Card security code",
        "type=\"text\" inputmode=\"numeric\" autocomplete=\"cc-csc\" size=\"4\"",
        String::new(),
    ));
    let email = if field(form, "email").is_empty() {
        p.email.as_deref().map(esc).unwrap_or_default()
    } else {
        keep("email")
    };
    html.push_str(&input(
        "email",
        "Email address (for your confirmation)",
        "type=\"email\" autocomplete=\"email\" spellcheck=\"false\"",
        email,
    ));
    html.push_str(
        "<button type=\"submit\" name=\"action\" value=\"pay\">Pay</button>\n\
<button type=\"submit\" name=\"action\" value=\"cancel\">Cancel payment</button>\n</form>\n",
    );
    html.push_str("<details>\n<summary>Test cards</summary>\n<ul>\n");
    for (number, brand, what) in TEST_CARDS {
        html.push_str(&format!(
            "<li>{} {}: {}</li>\n",
            esc(brand),
            esc(number),
            esc(what)
        ));
    }
    html.push_str(
        "</ul>\n<p>Use any future expiry date, any name and any security code.</p>\n</details>\n",
    );
    layout("Enter card details", &html)
}

fn not_found() -> Reply {
    message_page(
        Status::NotFound,
        "Payment link not valid",
        "This payment link does not exist. Go back to the service and start again.",
        None,
    )
}

fn finished_page(p: &PayRec) -> Reply {
    let (title, text) = match p.st {
        St::Success => ("Your payment was successful", "This payment is complete."),
        St::Expired => (
            "Your payment session has expired",
            "You did not pay within 90 minutes. Go back to the service to try again.",
        ),
        _ => (
            "This payment has finished",
            "This payment cannot be made. Go back to the service to try again.",
        ),
    };
    message_page(Status::Ok, title, text, Some(&p.return_url))
}

fn lookup(shared: &Shared, token: &str) -> Option<(Arc<Entry>, u32)> {
    shared.pay_token(token)
}

#[get("/pay/<token>")]
fn pay_page(shared: &State<Arc<Shared>>, token: &str) -> Reply {
    let Some((entry, idx)) = lookup(shared, token) else {
        return not_found();
    };
    shared.with_account(&entry, |account, ctx| {
        if account.payment(idx).st == St::Created {
            let _ = account.drive(idx, Target::Started, ctx);
        }
        let p = account.payment(idx);
        if p.st.is_finished() {
            finished_page(p)
        } else {
            Reply::html(Status::Ok, card_form(token, p, &[], &Vec::new()))
                .header("Cache-Control", "no-store".into())
        }
    })
}

async fn read_form(data: Data<'_>) -> Form {
    let bytes = match data.open(64.kibibytes()).into_bytes().await {
        Ok(b) if b.is_complete() => b.into_inner(),
        _ => Vec::new(),
    };
    url::form_urlencoded::parse(&bytes)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

#[post("/pay/<token>", data = "<data>")]
async fn pay_submit(shared: &State<Arc<Shared>>, token: &str, data: Data<'_>) -> Reply {
    let form = read_form(data).await;
    let Some((entry, idx)) = lookup(shared, token) else {
        return not_found();
    };
    let cancel = field(&form, "action") == "cancel";
    let checked = if cancel { None } else { Some(validate(&form)) };
    shared.with_account(&entry, |account, ctx| {
        let p = account.payment(idx);
        if p.st.is_finished() {
            // A second submit (refresh, double click) lands where the first one did.
            return Reply::redirect(&p.return_url.clone());
        }
        let return_url = p.return_url.clone();
        let target = match checked {
            None => Target::UserCancelled,
            Some(Err(problems)) => {
                return Reply::html(
                    Status::UnprocessableEntity,
                    card_form(token, p, &problems, &form),
                )
                .header("Cache-Control", "no-store".into());
            }
            Some(Ok(card)) => {
                let Some(record) = card.record() else {
                    return Reply::html(
                        Status::UnprocessableEntity,
                        card_form(
                            token,
                            p,
                            &[("card_number", "Enter a valid card number")],
                            &form,
                        ),
                    );
                };
                if let Some(email) = &card.email {
                    account.payments[idx as usize].email = Some(email.as_str().into());
                }
                match decide(&card.number, card.month, card.year, date_of(ctx.now)) {
                    Outcome::Success => Target::Success(record),
                    Outcome::Declined => Target::Declined(record),
                    Outcome::Error => Target::Error(record),
                }
            }
        };
        let _ = account.drive(idx, target, ctx);
        Reply::redirect(&return_url)
    })
}

/// The `next_url_post` form: the token comes as `chargeTokenId`.
#[post("/pay", data = "<data>")]
async fn pay_entry(data: Data<'_>) -> Reply {
    let form = read_form(data).await;
    let token = field(&form, "chargeTokenId");
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return not_found();
    }
    Reply::redirect(&format!("/pay/{token}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    const TODAY: Date = date!(2026 - 03 - 15);

    #[test]
    fn each_test_card_has_its_outcome() {
        assert_eq!(
            decide("4111111111111111", 12, 2030, TODAY),
            Outcome::Success
        );
        assert_eq!(decide("5555555555554444", 1, 2027, TODAY), Outcome::Success);
        assert_eq!(decide("378282246310005", 3, 2026, TODAY), Outcome::Success);
        assert_eq!(
            decide("4111111111111111", 1, 2023, TODAY),
            Outcome::Declined
        );
        assert_eq!(
            decide("4000000000000002", 12, 2030, TODAY),
            Outcome::Declined
        );
        assert_eq!(decide("4000000000000119", 12, 2030, TODAY), Outcome::Error);
        assert_eq!(
            decide("5555555555554444", 2, 2026, TODAY),
            Outcome::Declined
        );
        assert_eq!(
            decide("4242424242424242", 12, 2030, TODAY),
            Outcome::Declined
        );
    }

    fn form(pairs: &[(&str, &str)]) -> Form {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_form_is_checked_and_keeps_only_six_and_four_digits() {
        let ok = validate(&form(&[
            ("card_number", "4111 1111 1111 1111"),
            ("expiry_month", "01"),
            ("expiry_year", "23"),
            ("cardholder_name", "Seán O'Brien"),
            ("cvc", "123"),
        ]))
        .ok()
        .unwrap();
        assert_eq!((ok.month, ok.year), (1, 2023));
        let rec = ok.record().unwrap();
        assert_eq!(
            (rec.first6(), rec.last4(), rec.expiry()),
            ("411111", "1111", "01/23")
        );
        assert_eq!(rec.brand, Brand::Visa);
        let bad = validate(&form(&[
            ("card_number", "4111111111111112"),
            ("expiry_month", "13"),
            ("cvc", "12"),
        ]))
        .err()
        .unwrap();
        let fields: Vec<_> = bad.iter().map(|(f, _)| *f).collect();
        assert_eq!(
            fields,
            ["card_number", "expiry_month", "cardholder_name", "cvc"]
        );
        // An Amex code has four digits.
        assert!(validate(&form(&[
            ("card_number", "378282246310005"),
            ("expiry_month", "1"),
            ("expiry_year", "2030"),
            ("cardholder_name", "A"),
            ("cvc", "123"),
        ]))
        .is_err());
    }

    #[test]
    fn values_are_escaped() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#x27;&amp;&#x27;&lt;/a&gt;"
        );
    }
}
