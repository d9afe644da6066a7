//! The deterministic journey generator: the INSERT … SELECT text that makes rows n..=m, and
//! the names and card prefixes it draws from.

use crate::store::Backend;

/// The three services, with their share of the journeys: 60%, 30% and 10%.
pub(crate) const SERVICES: [(&str, &str, &str); 3] = [
    ("parking-permits", "Parking permits", "Parking permit"),
    (
        "garden-waste",
        "Garden waste collection",
        "Garden waste subscription",
    ),
    ("court-fines", "Court fines", "Fine payment"),
];

/// First and last names, for payers' emails and cardholders.
pub(crate) const FIRST_NAMES: [&str; 100] = [
    "Oliver",
    "George",
    "Harry",
    "Noah",
    "Jack",
    "Leo",
    "Arthur",
    "Muhammad",
    "Oscar",
    "Charlie",
    "Jacob",
    "Thomas",
    "Henry",
    "William",
    "Alfie",
    "Joshua",
    "Freddie",
    "Archie",
    "Ethan",
    "Isaac",
    "James",
    "Joseph",
    "Samuel",
    "Daniel",
    "Max",
    "Lucas",
    "Mason",
    "Theo",
    "Logan",
    "Adam",
    "Alexander",
    "Benjamin",
    "Edward",
    "Elijah",
    "Finley",
    "Harrison",
    "Reuben",
    "Tommy",
    "Sebastian",
    "Dylan",
    "Olivia",
    "Amelia",
    "Isla",
    "Ava",
    "Mia",
    "Ivy",
    "Lily",
    "Isabella",
    "Rosie",
    "Sophia",
    "Grace",
    "Willow",
    "Freya",
    "Florence",
    "Emily",
    "Ella",
    "Poppy",
    "Evie",
    "Elsie",
    "Charlotte",
    "Evelyn",
    "Sienna",
    "Sofia",
    "Daisy",
    "Phoebe",
    "Sophie",
    "Alice",
    "Harper",
    "Matilda",
    "Ruby",
    "Emilia",
    "Maya",
    "Millie",
    "Isabelle",
    "Ellie",
    "Esme",
    "Chloe",
    "Jessica",
    "Lucy",
    "Hannah",
    "Anna",
    "Sarah",
    "Laura",
    "Rachel",
    "Rebecca",
    "Katie",
    "Megan",
    "Zara",
    "Aisha",
    "Fatima",
    "Priya",
    "Anjali",
    "Wei",
    "Mei",
    "Chen",
    "Tomasz",
    "Agnieszka",
    "Kwame",
    "Amara",
    "Siobhan",
];
pub(crate) const LAST_NAMES: [&str; 100] = [
    "Smith",
    "Jones",
    "Taylor",
    "Brown",
    "Williams",
    "Wilson",
    "Johnson",
    "Davies",
    "Robinson",
    "Wright",
    "Thompson",
    "Evans",
    "Walker",
    "White",
    "Roberts",
    "Green",
    "Hall",
    "Wood",
    "Jackson",
    "Clarke",
    "Patel",
    "Khan",
    "Lewis",
    "James",
    "Phillips",
    "Mason",
    "Mitchell",
    "Rose",
    "Davis",
    "Rodriguez",
    "Cox",
    "Alexander",
    "Morgan",
    "Moore",
    "Martin",
    "Price",
    "Hughes",
    "Edwards",
    "Turner",
    "Hill",
    "Cooper",
    "Ward",
    "Morris",
    "King",
    "Harris",
    "Baker",
    "Allen",
    "Young",
    "Scott",
    "Carter",
    "Murphy",
    "Kelly",
    "Bell",
    "Cook",
    "Bailey",
    "Parker",
    "Miller",
    "Shaw",
    "Lee",
    "Ali",
    "Hussain",
    "Begum",
    "Ahmed",
    "Singh",
    "Kaur",
    "Campbell",
    "Stewart",
    "Anderson",
    "Reid",
    "Murray",
    "Ross",
    "Watson",
    "Fraser",
    "Graham",
    "MacDonald",
    "Kennedy",
    "Owen",
    "Lloyd",
    "Powell",
    "Griffiths",
    "Richards",
    "Chapman",
    "Webb",
    "Marshall",
    "Harvey",
    "Gray",
    "Palmer",
    "Holmes",
    "Fox",
    "Barker",
    "Ellis",
    "Knight",
    "Hunt",
    "Mills",
    "Stevens",
    "Dixon",
    "Lawson",
    "Nowak",
    "Kowalski",
    "Okafor",
];
/// Card number prefixes (BINs) per brand.
pub(crate) const VISA_BINS: [&str; 25] = [
    "411111", "424242", "400115", "401288", "402400", "403587", "404159", "405512", "406742",
    "407220", "408899", "410039", "412753", "414720", "417500", "419773", "421365", "422216",
    "426684", "431940", "434256", "438857", "445653", "449352", "454313",
];
pub(crate) const MASTERCARD_BINS: [&str; 15] = [
    "510510", "512345", "520082", "522222", "530125", "535310", "540014", "542418", "545454",
    "550000", "552433", "555555", "222300", "230011", "271000",
];
pub(crate) const AMEX_BINS: [&str; 4] = ["340000", "341111", "370000", "378282"];

/// (A, B, C) of each row hash: see `Generator::hash`.
pub(crate) const HASHES: [(i64, i64, i64); 8] = [
    (2_654_435_761, 97, 1_103_515_245),
    (2_246_822_519, 1_013_904_223, 1_140_671_485),
    (3_266_489_917, 1_664_525, 1_299_709),
    (668_265_263, 374_761_393, 1_597_334_677),
    (2_869_860_233, 1_442_695_041, 1_274_126_177),
    (1_181_783_497, 40_503, 1_022_631_237),
    (3_046_413_977, 2_166_136_261, 1_808_877_157),
    (1_911_520_717, 16_777_619, 2_038_074_743),
];
/// The largest prime below 2^32.
pub(crate) const PRIME: i64 = 4_294_967_291;

/// Writes the INSERT … SELECT that makes journeys numbered `from..=to`: every value is a
/// deterministic function of the row number n, so a database seeded twice is the same.
pub(crate) struct Generator {
    pub(crate) backend: Backend,
    /// When row 1 was created, and the time between rows.
    pub(crate) start: i64,
    pub(crate) step: i64,
    pub(crate) now: i64,
    pub(crate) services: [i64; 3],
}

impl Generator {
    /// A pseudo-random value in [0, 2^32) for row n: an affine map modulo a prime, an
    /// xorshift (written with | and &: SQLite has no XOR), and a multiply modulo the prime.
    /// Every intermediate value stays below 2^63 on both databases.
    fn hash(k: usize) -> String {
        let (a, b, c) = HASHES[k];
        let x = format!("((n * {a} + {b}) % {PRIME})");
        let xorshift = format!("(({x} | ({x} >> 13)) - ({x} & ({x} >> 13)))");
        format!("(({xorshift} * {c}) % {PRIME})")
    }

    /// `e` as decimal digits, zero-padded to `width`.
    fn pad(&self, e: &str, width: usize) -> String {
        match self.backend {
            Backend::Sqlite => format!("printf('%0{width}d', {e})"),
            Backend::Postgres => format!("lpad(({e})::text, {width}, '0')"),
        }
    }

    fn hex8(&self, e: &str) -> String {
        match self.backend {
            Backend::Sqlite => format!("printf('%08x', {e})"),
            Backend::Postgres => format!("lpad(to_hex({e}), 8, '0')"),
        }
    }

    /// The `idx`-th of `items`, from one constant string of fixed-width slots.
    fn pick(&self, items: &[&str], idx: &str) -> String {
        let width = items.iter().map(|s| s.len()).max().unwrap_or(1);
        let table: String = items.iter().map(|s| format!("{s:<width$}")).collect();
        let from = format!("(({idx}) % {}) * {width} + 1", items.len());
        let from = match self.backend {
            Backend::Sqlite => from,
            Backend::Postgres => format!("({from})::int"),
        };
        format!("rtrim(substr('{table}', {from}, {width}))")
    }

    /// The UTC day of a time in microseconds, `plus` days on, as YYYY-MM-DD.
    fn day(&self, micros: &str, plus: i64) -> String {
        match self.backend {
            Backend::Sqlite => format!("date(({micros}) / 1000000, 'unixepoch', '+{plus} day')"),
            Backend::Postgres => format!(
                "to_char(((to_timestamp(({micros}) / 1000000) AT TIME ZONE 'UTC')::date + {plus})::timestamp, 'YYYY-MM-DD')"
            ),
        }
    }

    /// Keeps PostgreSQL from pulling a subquery up into the query around it, which would
    /// evaluate each of its columns' expressions once per use (five times slower here).
    fn fence(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => " OFFSET 0",
        }
    }

    fn least(&self, a: &str, b: &str) -> String {
        match self.backend {
            Backend::Sqlite => format!("min({a}, {b})"),
            Backend::Postgres => format!("LEAST({a}, {b})"),
        }
    }

    pub(crate) fn insert_sql(&self, from: i64, to: i64) -> String {
        let (head, source) = match self.backend {
            Backend::Sqlite => (
                format!("WITH RECURSIVE seq(n) AS (SELECT {from} UNION ALL SELECT n + 1 FROM seq WHERE n < {to}) "),
                "seq".to_string(),
            ),
            Backend::Postgres => (
                String::new(),
                format!("generate_series({from}::bigint, {to}::bigint) AS seq(n)"),
            ),
        };
        let hashes: Vec<String> = (0..HASHES.len())
            .map(|k| format!("{} AS h{}", Self::hash(k), k + 1))
            .collect();
        let (start, step, now) = (self.start, self.step, self.now);
        let [s0, s1, s2] = self.services;

        // Middle level: the row's choices, from its hashes.
        let em = "(h4 % 200000)";
        let given = self.pick(&FIRST_NAMES, &format!("{em} % 100"));
        let family = self.pick(&LAST_NAMES, &format!("({em} / 100) % 100"));
        let number = self.pad(&format!("({em} / 10000) * 500 + {em} % 500"), 4);
        let email = format!(
            "CASE WHEN (h4 / 200000) % 4 = 0 THEN {given} || '.' || {family} || {number} || '@example.org' \
             ELSE lower({given} || '.' || {family}) || {number} || '@example.org' END"
        );
        let cardholder = format!(
            "{} || ' ' || {}",
            self.pick(&FIRST_NAMES, "h5 % 100"),
            self.pick(&LAST_NAMES, "(h5 / 100) % 100")
        );
        let brand = "CASE WHEN h3 % 100 < 60 THEN 'visa' WHEN h3 % 100 < 90 THEN 'master-card' \
             WHEN h3 % 100 < 95 THEN 'american-express' WHEN h3 % 100 = 95 THEN 'diners-club' \
             WHEN h3 % 100 = 96 THEN 'discover' WHEN h3 % 100 = 97 THEN 'jcb' \
             WHEN h3 % 100 = 98 THEN 'maestro' ELSE 'unionpay' END";
        let bin = format!(
            "CASE WHEN h3 % 100 < 60 THEN {} WHEN h3 % 100 < 90 THEN {} WHEN h3 % 100 < 95 THEN {} \
             WHEN h3 % 100 = 95 THEN '361234' WHEN h3 % 100 = 96 THEN '601100' \
             WHEN h3 % 100 = 97 THEN '353011' WHEN h3 % 100 = 98 THEN '675900' ELSE '622126' END",
            self.pick(&VISA_BINS, "h3 / 100"),
            self.pick(&MASTERCARD_BINS, "h3 / 100"),
            self.pick(&AMEX_BINS, "h3 / 100"),
        );
        let middle = format!(
            "SELECT n, h1, h5, h6, \
               h1 % 10 AS svc, \
               h2 % 1000 AS st, \
               {start} + (n - 1) * {step} + h8 % {step} AS created, \
               100 + (h6 / 10000) % 49901 AS amount, \
               {email} AS email, \
               {cardholder} AS cardholder, \
               {brand} AS brand, \
               {bin} AS bin, \
               CASE WHEN h3 % 100 BETWEEN 90 AND 94 OR (h3 / 100000) % 3 = 0 THEN 'credit' ELSE 'debit' END AS card_type, \
               h7 % 100 AS md, \
               'LC' || {ledger} AS ledger, \
               'CASE-' || {case} AS case_ref, \
               (h1 / 1000) % 40 AS attention \
             FROM (SELECT n, {hashes} FROM {source}{fence}) AS a{fence}",
            ledger = self.pad("(h7 / 100) % 100", 3),
            case = self.pad("(h7 / 10000) % 1000000", 6),
            hashes = hashes.join(", "),
            fence = self.fence(),
        );

        // Outer level: the columns. Status buckets (per mille): success 700, declined 100,
        // timed out 80, cancelled by the payer 40, cancelled by the service 30, created 20,
        // started 20, error 10. Card details exist for success, declined and error.
        let success = "st < 700";
        let unfinished = "(st >= 950 AND st < 990)";
        let card = "(st < 800 OR st >= 990)";
        let seen = self.least("created + 600000000", &now.to_string());
        let columns = [
            ("service_id", format!("CASE WHEN svc < 6 THEN {s0} WHEN svc < 9 THEN {s1} ELSE {s2} END")),
            ("payment_id", format!("{} || {} || {}", self.hex8("h1"), self.hex8("h5"), self.pad("n", 10))),
            ("status", "CASE WHEN st < 700 THEN 'success' WHEN st < 920 THEN 'failed' WHEN st < 950 THEN 'cancelled' \
                         WHEN st < 970 THEN 'created' WHEN st < 990 THEN 'started' ELSE 'error' END".into()),
            ("status_rank", "CASE WHEN st >= 950 AND st < 970 THEN 0 WHEN st >= 970 AND st < 990 THEN 1 ELSE 4 END".into()),
            ("finished", format!("(NOT {unfinished})")),
            ("state_code", "CASE WHEN st < 700 THEN NULL WHEN st < 800 THEN 'P0010' WHEN st < 880 THEN 'P0020' \
                             WHEN st < 920 THEN 'P0030' WHEN st < 950 THEN 'P0040' WHEN st < 990 THEN NULL ELSE 'P0050' END".into()),
            ("state_message", "CASE WHEN st < 700 THEN NULL WHEN st < 800 THEN 'Payment method rejected' \
                                WHEN st < 880 THEN 'Payment expired' WHEN st < 920 THEN 'Payment was cancelled by the user' \
                                WHEN st < 950 THEN 'Payment was cancelled by the service' WHEN st < 990 THEN NULL \
                                ELSE 'Payment provider returned an error' END".into()),
            ("amount", "amount".into()),
            ("description", format!(
                "CASE WHEN svc < 6 THEN '{}' WHEN svc < 9 THEN '{}' ELSE '{}' END",
                SERVICES[0].2, SERVICES[1].2, SERVICES[2].2
            )),
            ("reference", format!("'PAY-' || {}", self.pad("n", 8))),
            ("reference_key", format!("'pay-' || {}", self.pad("n", 8))),
            ("email", "email".into()),
            ("email_key", "lower(email)".into()),
            ("language", "CASE WHEN (h5 / 10000) % 20 = 0 THEN 'cy' ELSE 'en' END".into()),
            ("cardholder_name", format!("CASE WHEN {card} THEN cardholder END")),
            ("card_brand", format!("CASE WHEN {card} THEN brand END")),
            ("card_type", format!("CASE WHEN {card} THEN card_type END")),
            ("first_digits", format!("CASE WHEN {card} THEN bin END")),
            ("last_digits", format!("CASE WHEN {card} THEN {} END", self.pad("h6 % 10000", 4))),
            ("expiry_date", format!(
                "CASE WHEN {card} THEN {} || '/' || {} END",
                self.pad("1 + (h6 / 10000000) % 12", 2),
                self.pad("27 + (h6 / 1000) % 5", 2)
            )),
            ("payment_provider", "CASE WHEN svc < 6 THEN 'worldpay' ELSE 'stripe' END".into()),
            ("provider_id", format!("CASE WHEN {success} THEN 'pi_' || {} || {} END", self.hex8("h6"), self.hex8("n"))),
            ("created_at", "created".into()),
            ("capture_submitted_at", format!("CASE WHEN {success} THEN created + 2000000 END")),
            ("captured_date", format!("CASE WHEN {success} THEN {} END", self.day("created", 0))),
            ("settled_date", format!("CASE WHEN {success} THEN {} END", self.day("created", 1))),
            ("fee", format!("CASE WHEN {success} THEN 20 + amount * 15 / 1000 END")),
            ("net_amount", format!("CASE WHEN {success} THEN amount - (20 + amount * 15 / 1000) END")),
            ("total_amount", "amount".into()),
            ("refund_status", format!("CASE WHEN {success} THEN 'available' ELSE 'unavailable' END")),
            ("refund_available", format!("CASE WHEN {success} THEN amount ELSE 0 END")),
            ("refund_submitted", "0".into()),
            ("metadata", "CASE WHEN md < 20 THEN '{\"ledger_code\":\"' || ledger || '\",\"case_reference\":\"' || case_ref || '\"}' \
                           WHEN md < 50 THEN '{\"ledger_code\":\"' || ledger || '\"}' END".into()),
            ("case_reference", "CASE WHEN md < 20 THEN case_ref END".into()),
            ("delayed_capture", "FALSE".into()),
            ("moto", "FALSE".into()),
            ("needs_attention", format!("({unfinished} AND attention = 0)")),
            ("attention_reason", format!(
                "CASE WHEN {unfinished} AND attention = 0 THEN 'No final state 15 minutes after it should have expired' END"
            )),
            ("observed_at", seen.clone()),
            ("first_seen_at", seen.clone()),
            ("updated_at", seen),
        ];
        let names: Vec<&str> = columns.iter().map(|(n, _)| *n).collect();
        let values: Vec<&str> = columns.iter().map(|(_, v)| v.as_str()).collect();
        format!(
            "{head}INSERT INTO journeys ({}) SELECT {} FROM ({middle}) AS b",
            names.join(", "),
            values.join(",\n  ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_their_slots() {
        let mut first = FIRST_NAMES.to_vec();
        first.sort();
        first.dedup();
        assert_eq!(first.len(), 100);
        let mut last = LAST_NAMES.to_vec();
        last.sort();
        last.dedup();
        assert_eq!(last.len(), 100);
        assert!(FIRST_NAMES
            .iter()
            .chain(LAST_NAMES.iter())
            .all(|n| n.is_ascii() && !n.contains('\'')));
    }
}
