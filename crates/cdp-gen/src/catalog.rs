//! Static tables of the synthetic bank: personas, merchant categories,
//! countries, cities, names.

/// Spending and digital behaviour archetypes. Tags and models should be
/// able to rediscover them from the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Persona {
    Commuter,
    OnlineShopper,
    Diner,
    Traveller,
    Student,
    Affluent,
    Dormant,
}

impl Persona {
    pub const ALL: [Persona; 7] = [
        Persona::Commuter,
        Persona::OnlineShopper,
        Persona::Diner,
        Persona::Traveller,
        Persona::Student,
        Persona::Affluent,
        Persona::Dormant,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Persona::Commuter => "commuter",
            Persona::OnlineShopper => "online_shopper",
            Persona::Diner => "diner",
            Persona::Traveller => "traveller",
            Persona::Student => "student",
            Persona::Affluent => "affluent",
            Persona::Dormant => "dormant",
        }
    }

    pub fn spec(self) -> &'static PersonaSpec {
        &PERSONAS[self as usize]
    }
}

/// Behaviour parameters of a persona.
pub struct PersonaSpec {
    /// Share of the population.
    pub weight: f64,
    /// Mean card transactions per day.
    pub txn_rate: f64,
    /// Mean app/web sessions per day at digital = 1.
    pub sessions: f64,
    /// Income band range.
    pub income: (u8, u8),
    /// Age range in years.
    pub age: (u32, u32),
    /// Median spend multiplier.
    pub spend: f64,
    /// Trait ranges: foreign, online, dining, digital.
    pub foreign: (f64, f64),
    pub online: (f64, f64),
    pub dining: (f64, f64),
    pub digital: (f64, f64),
    /// Category weights at home (index into [`CATEGORIES`]).
    pub mix: &'static [(usize, f64)],
}

// Category indices.
pub const GROCERY: usize = 0;
pub const TRANSPORT: usize = 1;
pub const FUEL: usize = 2;
pub const FAST_FOOD: usize = 3;
pub const RESTAURANT: usize = 4;
pub const BAR: usize = 5;
pub const CONVENIENCE: usize = 6;
pub const ONLINE: usize = 7;
pub const ELECTRONICS: usize = 8;
pub const CLOTHING: usize = 9;
pub const AIRLINE: usize = 10;
pub const HOTEL: usize = 11;
pub const CAR_RENTAL: usize = 12;
pub const DUTY_FREE: usize = 13;
pub const JEWELRY: usize = 14;
pub const BOOKS: usize = 15;
pub const DIGITAL_GOODS: usize = 16;
pub const UTILITIES: usize = 17;
pub const ATM: usize = 18;
pub const P2P: usize = 19;

pub static PERSONAS: [PersonaSpec; 7] = [
    PersonaSpec {
        weight: 0.26,
        txn_rate: 0.75,
        sessions: 0.25,
        income: (2, 6),
        age: (23, 60),
        spend: 0.9,
        foreign: (0.0, 0.2),
        online: (0.1, 0.45),
        dining: (0.1, 0.45),
        digital: (0.2, 0.7),
        mix: &[
            (GROCERY, 25.0),
            (TRANSPORT, 20.0),
            (FUEL, 8.0),
            (FAST_FOOD, 15.0),
            (RESTAURANT, 6.0),
            (CONVENIENCE, 12.0),
            (ONLINE, 5.0),
            (UTILITIES, 4.0),
            (ATM, 3.0),
            (P2P, 2.0),
        ],
    },
    PersonaSpec {
        weight: 0.17,
        txn_rate: 0.85,
        sessions: 0.4,
        income: (3, 7),
        age: (20, 40),
        spend: 1.0,
        foreign: (0.05, 0.4),
        online: (0.6, 0.95),
        dining: (0.1, 0.45),
        digital: (0.6, 1.0),
        mix: &[
            (ONLINE, 30.0),
            (ELECTRONICS, 6.0),
            (CLOTHING, 12.0),
            (DIGITAL_GOODS, 10.0),
            (FAST_FOOD, 10.0),
            (GROCERY, 10.0),
            (CONVENIENCE, 8.0),
            (TRANSPORT, 7.0),
            (P2P, 5.0),
        ],
    },
    PersonaSpec {
        weight: 0.14,
        txn_rate: 0.8,
        sessions: 0.3,
        income: (3, 8),
        age: (25, 50),
        spend: 1.1,
        foreign: (0.0, 0.3),
        online: (0.1, 0.5),
        dining: (0.6, 0.95),
        digital: (0.3, 0.9),
        mix: &[
            (RESTAURANT, 30.0),
            (FAST_FOOD, 15.0),
            (BAR, 12.0),
            (GROCERY, 12.0),
            (CONVENIENCE, 8.0),
            (TRANSPORT, 8.0),
            (ONLINE, 5.0),
            (CLOTHING, 5.0),
            (P2P, 5.0),
        ],
    },
    PersonaSpec {
        weight: 0.10,
        txn_rate: 0.7,
        sessions: 0.3,
        income: (5, 10),
        age: (28, 58),
        spend: 1.4,
        foreign: (0.6, 0.95),
        online: (0.2, 0.6),
        dining: (0.2, 0.6),
        digital: (0.4, 0.9),
        mix: &[
            (RESTAURANT, 15.0),
            (GROCERY, 12.0),
            (ONLINE, 10.0),
            (AIRLINE, 4.0),
            (HOTEL, 4.0),
            (TRANSPORT, 10.0),
            (FAST_FOOD, 10.0),
            (CLOTHING, 8.0),
            (FUEL, 7.0),
            (CAR_RENTAL, 2.0),
            (CONVENIENCE, 8.0),
            (JEWELRY, 1.0),
            (P2P, 9.0),
        ],
    },
    PersonaSpec {
        weight: 0.10,
        txn_rate: 0.9,
        sessions: 0.45,
        income: (1, 3),
        age: (18, 24),
        spend: 0.45,
        foreign: (0.0, 0.2),
        online: (0.4, 0.8),
        dining: (0.1, 0.5),
        digital: (0.7, 1.0),
        mix: &[
            (FAST_FOOD, 25.0),
            (CONVENIENCE, 20.0),
            (TRANSPORT, 15.0),
            (BOOKS, 8.0),
            (DIGITAL_GOODS, 15.0),
            (ONLINE, 12.0),
            (P2P, 5.0),
        ],
    },
    PersonaSpec {
        weight: 0.10,
        txn_rate: 0.6,
        sessions: 0.2,
        income: (7, 10),
        age: (35, 70),
        spend: 2.2,
        foreign: (0.3, 0.7),
        online: (0.1, 0.5),
        dining: (0.4, 0.7),
        digital: (0.2, 0.7),
        mix: &[
            (RESTAURANT, 15.0),
            (JEWELRY, 4.0),
            (CLOTHING, 15.0),
            (GROCERY, 15.0),
            (HOTEL, 6.0),
            (ELECTRONICS, 5.0),
            (ONLINE, 10.0),
            (FUEL, 10.0),
            (AIRLINE, 3.0),
            (UTILITIES, 5.0),
            (P2P, 12.0),
        ],
    },
    PersonaSpec {
        weight: 0.13,
        txn_rate: 0.05,
        sessions: 0.03,
        income: (1, 6),
        age: (20, 80),
        spend: 0.7,
        foreign: (0.0, 0.05),
        online: (0.0, 0.2),
        dining: (0.0, 0.2),
        digital: (0.0, 0.15),
        mix: &[
            (GROCERY, 40.0),
            (CONVENIENCE, 30.0),
            (ATM, 20.0),
            (UTILITIES, 10.0),
        ],
    },
];

/// Category mix abroad.
pub const TRIP_MIX: &[(usize, f64)] = &[
    (HOTEL, 20.0),
    (RESTAURANT, 30.0),
    (CAR_RENTAL, 8.0),
    (DUTY_FREE, 10.0),
    (CONVENIENCE, 12.0),
    (TRANSPORT, 10.0),
    (CLOTHING, 10.0),
];

/// When in the day a category happens.
#[derive(Debug, Clone, Copy)]
pub enum Hours {
    Daytime,
    Commute,
    Meals,
    Night,
    Evening,
    AllDay,
}

impl Hours {
    /// Relative weight of each local hour 0..24.
    pub fn weights(self) -> &'static [f64; 24] {
        match self {
            Hours::Daytime => &[
                0.1, 0.05, 0.0, 0.0, 0.0, 0.1, 0.3, 1.0, 2.0, 3.0, 4.0, 4.0, 4.0, 3.5, 3.5, 3.5,
                4.0, 4.5, 5.0, 4.5, 3.0, 2.0, 1.0, 0.3,
            ],
            Hours::Commute => &[
                0.2, 0.1, 0.0, 0.0, 0.0, 0.3, 2.0, 6.0, 8.0, 4.0, 1.5, 1.0, 1.5, 1.0, 1.0, 1.5,
                3.0, 6.0, 7.0, 4.0, 2.0, 1.5, 1.0, 0.5,
            ],
            Hours::Meals => &[
                0.3, 0.2, 0.1, 0.0, 0.0, 0.0, 0.5, 1.5, 1.5, 0.8, 1.0, 4.0, 6.0, 4.0, 1.0, 0.8,
                1.0, 2.5, 6.0, 7.0, 4.0, 2.0, 1.2, 0.6,
            ],
            Hours::Night => &[
                3.0, 2.0, 1.0, 0.3, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.2, 0.2, 0.2, 0.3,
                0.5, 1.0, 2.0, 3.0, 5.0, 6.0, 6.0, 5.0,
            ],
            Hours::Evening => &[
                1.5, 0.8, 0.3, 0.1, 0.1, 0.1, 0.3, 0.8, 1.0, 1.2, 1.5, 1.5, 2.0, 1.8, 1.5, 1.5,
                1.5, 1.8, 2.0, 3.0, 4.0, 5.0, 5.0, 3.0,
            ],
            Hours::AllDay => &[1.0; 24],
        }
    }
}

/// A merchant category.
pub struct Category {
    pub mcc: &'static str,
    /// Median amount in CNY at spend = 1.
    pub median: f64,
    pub hours: Hours,
    /// Channel when bought in person; online purchases use `ecom`.
    pub channel: &'static str,
    /// Share bought online for a fully online customer.
    pub online: f64,
    /// Eligible for refunds.
    pub refundable: bool,
    pub names: &'static [&'static str],
}

pub static CATEGORIES: [Category; 20] = [
    Category {
        mcc: "5411",
        median: 85.0,
        hours: Hours::Daytime,
        channel: "pos",
        online: 0.3,
        refundable: false,
        names: &[
            "Hema Fresh",
            "CityMart",
            "Lianhua Supermarket",
            "Ole' Market",
            "Fresh & Easy, Co.",
        ],
    },
    Category {
        mcc: "4111",
        median: 6.0,
        hours: Hours::Commute,
        channel: "mobile",
        online: 0.0,
        refundable: false,
        names: &["Metro Transit", "City Bus Co.", "DiDi Rides"],
    },
    Category {
        mcc: "5541",
        median: 300.0,
        hours: Hours::Daytime,
        channel: "pos",
        online: 0.0,
        refundable: false,
        names: &["Sinopec", "PetroChina", "Shell Station"],
    },
    Category {
        mcc: "5814",
        median: 35.0,
        hours: Hours::Meals,
        channel: "pos",
        online: 0.4,
        refundable: false,
        names: &[
            "Burger Hub",
            "Luckin Coffee",
            "Noodle Express",
            "Jianbing \"Master\" Stall",
        ],
    },
    Category {
        mcc: "5812",
        median: 180.0,
        hours: Hours::Meals,
        channel: "pos",
        online: 0.1,
        refundable: false,
        names: &[
            "Golden Dragon",
            "Wang's \"Golden\" Dumplings, Ltd",
            "Le Petit Café",
            "海底捞火锅",
            "Din Tai Fung",
            "Spice & Rice, Sichuan",
        ],
    },
    Category {
        mcc: "5813",
        median: 220.0,
        hours: Hours::Night,
        channel: "pos",
        online: 0.0,
        refundable: false,
        names: &["The Bund Bar", "Hops & Barley", "Jazz \"Blue Note\" Club"],
    },
    Category {
        mcc: "5499",
        median: 25.0,
        hours: Hours::AllDay,
        channel: "pos",
        online: 0.2,
        refundable: false,
        names: &["FamilyMart", "Lawson", "7-Eleven", "全家便利店"],
    },
    Category {
        mcc: "5399",
        median: 160.0,
        hours: Hours::Evening,
        channel: "pos",
        online: 0.95,
        refundable: true,
        names: &["Taobao Marketplace", "JD.com", "Pinduoduo", "Tmall Global"],
    },
    Category {
        mcc: "5732",
        median: 1800.0,
        hours: Hours::Evening,
        channel: "pos",
        online: 0.6,
        refundable: true,
        names: &[
            "Suning Electronics",
            "Apple Store",
            "Xiaomi Home",
            "Gome, Electrical",
        ],
    },
    Category {
        mcc: "5651",
        median: 450.0,
        hours: Hours::Daytime,
        channel: "pos",
        online: 0.5,
        refundable: true,
        names: &["Uniqlo", "Zara", "Li-Ning", "Anta \"Sports\""],
    },
    Category {
        mcc: "4511",
        median: 3200.0,
        hours: Hours::Evening,
        channel: "ecom",
        online: 1.0,
        refundable: true,
        names: &[
            "China Eastern",
            "Air China",
            "Cathay Pacific",
            "Spring Airlines",
        ],
    },
    Category {
        mcc: "7011",
        median: 900.0,
        hours: Hours::Evening,
        channel: "pos",
        online: 0.5,
        refundable: true,
        names: &[
            "Marriott",
            "Hilton",
            "Atour Hotel",
            "Hotel \"Lotus\", Riverside",
        ],
    },
    Category {
        mcc: "7512",
        median: 600.0,
        hours: Hours::Daytime,
        channel: "pos",
        online: 0.3,
        refundable: false,
        names: &["Hertz", "Avis", "eHi Car Rental"],
    },
    Category {
        mcc: "5309",
        median: 1200.0,
        hours: Hours::Daytime,
        channel: "pos",
        online: 0.0,
        refundable: false,
        names: &["Duty Free Shoppers", "Lotte Duty Free", "King Power"],
    },
    Category {
        mcc: "5944",
        median: 8000.0,
        hours: Hours::Daytime,
        channel: "pos",
        online: 0.1,
        refundable: true,
        names: &["Chow Tai Fook", "Cartier", "Tiffany & Co."],
    },
    Category {
        mcc: "5942",
        median: 60.0,
        hours: Hours::Daytime,
        channel: "pos",
        online: 0.5,
        refundable: false,
        names: &["Xinhua Bookstore", "Dangdang Books", "Campus Books"],
    },
    Category {
        mcc: "5815",
        median: 30.0,
        hours: Hours::Evening,
        channel: "ecom",
        online: 1.0,
        refundable: false,
        names: &[
            "Tencent Games",
            "NetEase Music",
            "iQIYI VIP",
            "Bilibili Premium",
        ],
    },
    Category {
        mcc: "4900",
        median: 220.0,
        hours: Hours::Daytime,
        channel: "transfer",
        online: 0.0,
        refundable: false,
        names: &["State Grid", "City Water", "China Mobile Bill"],
    },
    Category {
        mcc: "6011",
        median: 1000.0,
        hours: Hours::Daytime,
        channel: "atm",
        online: 0.0,
        refundable: false,
        names: &["ATM Withdrawal"],
    },
    Category {
        mcc: "4829",
        median: 500.0,
        hours: Hours::AllDay,
        channel: "transfer",
        online: 0.0,
        refundable: false,
        names: &["P2P Transfer"],
    },
];

/// A trip destination.
pub struct Country {
    pub code: &'static str,
    pub currency: &'static str,
    /// UTC offset in hours (no daylight saving in this model).
    pub offset_hours: i32,
    /// Decimals of the currency.
    pub decimals: usize,
    /// First octets of its IP ranges.
    pub ip_octet: u8,
}

pub static COUNTRIES: [Country; 9] = [
    Country {
        code: "JP",
        currency: "JPY",
        offset_hours: 9,
        decimals: 0,
        ip_octet: 133,
    },
    Country {
        code: "TH",
        currency: "THB",
        offset_hours: 7,
        decimals: 2,
        ip_octet: 171,
    },
    Country {
        code: "US",
        currency: "USD",
        offset_hours: -5,
        decimals: 2,
        ip_octet: 23,
    },
    Country {
        code: "GB",
        currency: "GBP",
        offset_hours: 0,
        decimals: 2,
        ip_octet: 81,
    },
    Country {
        code: "FR",
        currency: "EUR",
        offset_hours: 1,
        decimals: 2,
        ip_octet: 90,
    },
    Country {
        code: "SG",
        currency: "SGD",
        offset_hours: 8,
        decimals: 2,
        ip_octet: 165,
    },
    Country {
        code: "KR",
        currency: "KRW",
        offset_hours: 9,
        decimals: 0,
        ip_octet: 211,
    },
    Country {
        code: "AU",
        currency: "AUD",
        offset_hours: 10,
        decimals: 2,
        ip_octet: 101,
    },
    Country {
        code: "HK",
        currency: "HKD",
        offset_hours: 8,
        decimals: 2,
        ip_octet: 203,
    },
];

/// City name and province code (first two digits of the resident id).
pub static CITIES: [(&str, u32); 12] = [
    ("Shanghai", 31),
    ("Beijing", 11),
    ("Shenzhen", 44),
    ("Guangzhou", 44),
    ("Hangzhou", 33),
    ("Chengdu", 51),
    ("Nanjing", 32),
    ("Wuhan", 42),
    ("Xi'an", 61),
    ("Suzhou", 32),
    ("Tianjin", 12),
    ("Chongqing", 50),
];

/// Surnames: characters and pinyin.
pub static SURNAMES: [(&str, &str); 20] = [
    ("王", "wang"),
    ("李", "li"),
    ("张", "zhang"),
    ("刘", "liu"),
    ("陈", "chen"),
    ("杨", "yang"),
    ("黄", "huang"),
    ("赵", "zhao"),
    ("吴", "wu"),
    ("周", "zhou"),
    ("徐", "xu"),
    ("孙", "sun"),
    ("马", "ma"),
    ("朱", "zhu"),
    ("胡", "hu"),
    ("郭", "guo"),
    ("何", "he"),
    ("高", "gao"),
    ("林", "lin"),
    ("罗", "luo"),
];

/// Given names: characters and pinyin.
pub static GIVEN_NAMES: [(&str, &str); 24] = [
    ("伟", "wei"),
    ("芳", "fang"),
    ("娜", "na"),
    ("敏", "min"),
    ("静", "jing"),
    ("丽", "li"),
    ("强", "qiang"),
    ("磊", "lei"),
    ("军", "jun"),
    ("洋", "yang"),
    ("勇", "yong"),
    ("艳", "yan"),
    ("杰", "jie"),
    ("娟", "juan"),
    ("涛", "tao"),
    ("明", "ming"),
    ("超", "chao"),
    ("秀英", "xiuying"),
    ("华", "hua"),
    ("平", "ping"),
    ("刚", "gang"),
    ("桂英", "guiying"),
    ("晓明", "xiaoming"),
    ("思雨", "siyu"),
];

/// Latin-script names of foreign or overseas-Chinese customers (some with
/// commas and quotes, which CSV must quote).
pub static LATIN_NAMES: [&str; 8] = [
    "O'Brien, Sean",
    "Tony \"TJ\" Zhang",
    "Müller, Anna",
    "Nguyễn Văn An",
    "Smith, John",
    "Kim Min-jun",
    "García, María",
    "Lee \"Jack\" Wong",
];

pub static EMAIL_DOMAINS: [&str; 7] = [
    "qq.com",
    "163.com",
    "126.com",
    "gmail.com",
    "outlook.com",
    "example.cn",
    "sina.com",
];

pub static PLATFORMS: [&str; 5] = ["weibo", "douyin", "xiaohongshu", "bilibili", "zhihu"];

pub static IOS_VERSIONS: [&str; 5] = ["16.7", "17.5", "17.6", "18.1", "18.2"];
pub static ANDROID_VERSIONS: [&str; 4] = ["12", "13", "14", "15"];
pub static WEB_VERSIONS: [&str; 4] = ["chrome-131", "safari-18", "edge-131", "firefox-133"];
pub static APP_VERSIONS: [&str; 4] = ["7.1.0", "7.2.0", "7.2.1", "7.3.0"];

/// First octets of Chinese consumer IP ranges.
pub static CN_IP_OCTETS: [u8; 12] = [36, 39, 58, 60, 101, 106, 112, 114, 117, 121, 183, 223];

/// Interests by persona.
pub fn interests(persona: Persona) -> &'static [&'static str] {
    match persona {
        Persona::Commuter => &["sports", "news", "parenting", "cars", "food"],
        Persona::OnlineShopper => &["fashion", "tech", "beauty", "deals", "home_decor"],
        Persona::Diner => &["food", "wine", "coffee", "travel", "music"],
        Persona::Traveller => &["travel", "photography", "food", "outdoors", "languages"],
        Persona::Student => &["gaming", "education", "anime", "music", "tech"],
        Persona::Affluent => &["finance", "golf", "luxury", "travel", "art"],
        Persona::Dormant => &["news", "health"],
    }
}

/// Non-card products a customer may hold.
pub static BASE_PRODUCTS: [&str; 5] =
    ["debit", "credit_classic", "wealth", "mortgage", "insurance"];
