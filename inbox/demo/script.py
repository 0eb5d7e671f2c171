"""What the demo organization is made of: its people, what they write about, and the
ready answers its team uses. Plain data, so the seed stays a loop over it."""

from __future__ import annotations

from dataclasses import dataclass

# (name, phone, e-mail): a few countries, as a small shop with customers abroad has.
PEOPLE: list[tuple[str, str, str]] = [
    ("Ana Souza", "+5511987654321", "ana.souza@example.com"),
    ("Ben Carter", "+14155550132", "ben.carter@example.com"),
    ("Chloé Martin", "+33612345678", "chloe.martin@example.fr"),
    ("Diego Fernández", "+34612398745", "diego.fernandez@example.es"),
    ("Emma Schmidt", "+4915112345678", "emma.schmidt@example.de"),
    ("Farah Khan", "+447700900123", "farah.khan@example.co.uk"),
    ("Gabriel Costa", "+351912345678", "gabriel.costa@example.pt"),
    ("Hana Suzuki", "+819012345678", "hana.suzuki@example.jp"),
    ("Isabella Rossi", "+393331234567", "isabella.rossi@example.it"),
    ("Jamal Williams", "+13125550187", "jamal.w@example.com"),
    ("Katarzyna Nowak", "+48501234567", "k.nowak@example.pl"),
    ("Liam O'Brien", "+353851234567", "liam.obrien@example.ie"),
    ("Mariana López", "+5215512345678", "mariana.lopez@example.mx"),
    ("Noah Johnson", "+12125550143", "noah.johnson@example.com"),
    ("Olga Ivanova", "+37255512345", "olga.ivanova@example.ee"),
    ("Pedro Alves", "+5521998765432", "pedro.alves@example.com.br"),
    ("Quentin Dubois", "+32470123456", "quentin.dubois@example.be"),
    ("Rosa Jiménez", "+56912345678", "rosa.jimenez@example.cl"),
    ("Samuel Mensah", "+233241234567", "samuel.mensah@example.com"),
    ("Tomás Silva", "+5491123456789", "tomas.silva@example.ar"),
    ("Uma Patel", "+919812345678", "uma.patel@example.in"),
    ("Victor Hugo Lima", "+5531987651234", "victor.lima@example.com.br"),
    ("Wen Li", "+8613812345678", "wen.li@example.cn"),
    ("Ximena Torres", "+573001234567", "ximena.torres@example.co"),
    ("Yusuf Demir", "+905321234567", "yusuf.demir@example.com.tr"),
    ("Zoe Taylor", "+61412345678", "zoe.taylor@example.com.au"),
    ("Alice Dupont", "+33698765432", "alice.dupont@example.fr"),
    ("Bruno Ferreira", "+351934567890", "bruno.ferreira@example.pt"),
    ("Carla Mendes", "+5511976543210", "carla.mendes@example.com.br"),
    ("David Kim", "+16465550199", "david.kim@example.com"),
]

# Customers the team treats with care: their conversations carry the "vip" label.
VIP = {"Ana Souza", "Emma Schmidt", "Noah Johnson", "Wen Li"}

# For `inbox demo --live`: the people who write in for the first time.
NEWCOMERS = [
    "Aiko Tanaka", "Bilal Hussain", "Camila Reyes", "Dmitri Petrov", "Elif Kaya",
    "Finn Larsen", "Grace Okafor", "Hugo Lambert", "Inès Moreau", "Jonas Berg",
]

# What existing customers write while the live demo runs.
LIVE_LINES = [
    "Hi, any news about my order?",
    "Thanks, that worked!",
    "Can I change the delivery address?",
    "Do you have this in blue?",
    "Is there a discount for a second item?",
    "The tracking link says 'label created' since Monday 🤔",
    "Could you send me the invoice again?",
    "Perfect, see you on Friday.",
    "What time do you close today?",
    "I'd like to cancel my subscription, please.",
    "Just received it, love it! 😍",
    "Is gift wrapping possible?",
]

FIRST_LINES = [
    "Hello! I found you on Instagram, do you ship internationally?",
    "Hi, is the store open tomorrow?",
    "Good morning, I'd like to know the price of the premium plan.",
    "Hey! A friend recommended you. Do you have gift cards?",
]


@dataclass(frozen=True)
class Line:
    """One message of a thread: ``who`` is "in" (the customer), "out" (an agent's reply)
    or "note" (a private note)."""

    who: str
    text: str


@dataclass(frozen=True)
class Thread:
    label: str
    lines: tuple[Line, ...]


def _thread(label: str, *lines: tuple[str, str]) -> Thread:
    return Thread(label, tuple(Line(who, text) for who, text in lines))


THREADS: list[Thread] = [
    _thread(
        "shipping",
        ("in", "Hi, my order #{order} hasn't arrived yet. It's been a week."),
        ("out", "Sorry about that, {first}! Let me check the tracking for you."),
        ("out", "It's with the courier and should arrive tomorrow before noon."),
        ("in", "Great, thanks!"),
    ),
    _thread(
        "shipping",
        ("in", "Do you ship to {country}?"),
        ("out", "We do! Delivery takes 3-5 business days."),
        ("in", "And how much is shipping?"),
    ),
    _thread(
        "shipping",
        ("in", "The parcel arrived damaged 😞 The box was completely crushed."),
        ("note", "Photos are in the e-mail thread. OK to send a replacement without a return?"),
        ("out", "I'm so sorry, {first}. We're sending a replacement today; keep the damaged one."),
        ("in", "Thank you, that's very kind."),
    ),
    _thread(
        "billing",
        ("in", "I was charged twice for order #{order}."),
        ("out", "Thanks for telling us. I can see the duplicate charge and I've refunded it."),
        ("out", "It takes 3-5 business days to show on your statement."),
        ("in", "Perfect 👍"),
    ),
    _thread(
        "billing",
        ("in", "Can I get an invoice with my company's VAT number?"),
        ("out", "Of course! What's the company name and VAT number?"),
        ("in", "Nova Trading Lda, PT509876543"),
    ),
    _thread(
        "billing",
        ("in", "Why did my subscription go up this month?"),
        ("note", "Annual discount expired on the 1st; offer to renew it?"),
        ("in", "Hello? I'd like an answer before I'm charged again."),
    ),
    _thread(
        "sales",
        ("in", "Is the premium plan available in {country}?"),
        ("out", "It is! Would you like a quick demo call this week?"),
        ("in", "Yes please, tomorrow at 10?"),
    ),
    _thread(
        "sales",
        ("in", "We'd like 200 units for our stores. Do you have wholesale pricing?"),
        ("note", "Big account: loop in sales before quoting."),
        ("out", "We do! I'm sending our wholesale price sheet to {email} now."),
        ("in", "Received, thanks. We'll get back to you on Monday."),
    ),
    _thread(
        "support",
        ("in", "Can I move my appointment to Friday?"),
        ("out", "Sure, does Friday at 3pm work for you?"),
        ("in", "Yes, thanks!"),
    ),
    _thread(
        "support",
        ("in", "I forgot my password and the reset e-mail never comes."),
        ("out", "Could you check your spam folder? I've just sent a new link to {email}."),
        ("in", "Found it in spam, I'm in. Thank you!"),
    ),
    _thread(
        "support",
        ("in", "How do I return an item?"),
        ("out", "You can start a return from your order page; it's free within 30 days."),
    ),
    _thread(
        "support",
        ("in", "The app crashes when I open my cart."),
        ("out", "Thanks for reporting it! Which phone and app version do you have?"),
        ("in", "iPhone 13, version 4.2.1"),
        ("in", "It also happened on my iPad."),
    ),
    _thread(
        "sales",
        ("in", "Do you have the linen shirt in size M?"),
        ("out", "Yes, M is in stock in white, blue and black."),
        ("in", "Black please! Can I pay on delivery?"),
    ),
    _thread(
        "support",
        ("in", "Bonjour! Is the store open on Sunday?"),
        ("out", "Hi {first}! Yes, from 10am to 4pm."),
    ),
]

# The reply the platform refused: a WhatsApp message outside the 24-hour window.
FAILED_REPLY = "Hi {first}, your replacement has shipped! Here's the tracking link."
FAILED_CODE = "131047"
FAILED_ERROR = (
    "Re-engagement message: more than 24 hours have passed since the customer last replied"
)

COUNTRIES = {
    "+55": "Brazil", "+1": "the US", "+33": "France", "+34": "Spain", "+49": "Germany",
    "+44": "the UK", "+351": "Portugal", "+81": "Japan", "+39": "Italy", "+48": "Poland",
    "+353": "Ireland", "+52": "Mexico", "+372": "Estonia", "+32": "Belgium", "+56": "Chile",
    "+233": "Ghana", "+54": "Argentina", "+91": "India", "+86": "China", "+57": "Colombia",
    "+90": "Turkey", "+61": "Australia",
}


def country_of(phone: str) -> str:
    for prefix in sorted(COUNTRIES, key=len, reverse=True):
        if phone.startswith(prefix):
            return COUNTRIES[prefix]
    return "your country"


CANNED: list[tuple[str, str]] = [
    ("greeting", "Hi {{contact.name}}, this is {{agent.name}}. How can I help you today?"),
    (
        "shipping-times",
        "Hi {{contact.name}}! Orders ship within one business day and arrive in 3-5 "
        "business days. You'll get a tracking link by e-mail.",
    ),
    (
        "refund",
        "I've issued your refund, {{contact.name}}. It takes 3-5 business days to show on "
        "your statement.",
    ),
    ("opening-hours", "We're open Monday to Saturday 9am-7pm, and Sunday 10am-4pm."),
    (
        "thanks",
        "Thanks for reaching out, {{contact.name}}! If there's anything else, just reply "
        "here. — {{agent.name}}",
    ),
]

# (index into PEOPLE, status, value): the pipeline a sales view starts from.
LEADS: list[tuple[int, str, int]] = [
    (0, "qualified", 4800), (3, "new", 350), (4, "converted", 12000), (6, "contacted", 900),
    (9, "new", 150), (12, "qualified", 2400), (13, "converted", 7600), (15, "lost", 600),
    (19, "contacted", 1200), (22, "qualified", 9500), (25, "new", 480), (28, "contacted", 300),
]
