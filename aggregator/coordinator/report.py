"""The coordinator's HTML report: one self-contained file (inline CSS and SVG, no scripts, no external resources).

What it shows, per period: the national table by form of exploitation with estimates and 95% intervals; bar
charts with interval whiskers by form, by age band (minors highlighted) and by nationality group, each bar
carrying the part seen as individual records; the trend over periods (when there are several); what a
registration from individual records alone (statutory or consent) would have shown against the hybrid estimate;
the joint estimate (distinct people, consistent with the joint total, with its interval) beside the
per-organisation estimate where the store holds a joint result for the period; the privacy
budget spent per organisation against its cap, for auditors; and a plain-language explanation of intervals
and epsilon. Labels in English or Dutch (`lang="nl"`).

Data comes from `national.national_table` and `store.budget_report` (both read the store read-only).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from ..contract.codelists import dimension_label, label, MINOR_BANDS
from ..errors import InputError, UsageError

BREAKDOWN_CHARTS = ("form", "age_band", "nationality_group")
LANGS = ("en", "nl")

# Every piece of text in the report, (English, Dutch).
TEXT: dict[str, tuple[str, str]] = {
    "title": ("National registration of presumed victims of human trafficking",
              "Nationale registratie van vermoedelijke slachtoffers van mensenhandel"),
    "generated": ("Generated", "Gemaakt"),
    "store": ("Store", "Database"),
    "periods": ("Periods", "Perioden"),
    "no_data": ("No bundles have been merged into this store yet, so there are no figures to show.",
                "Er zijn nog geen bundels in deze database samengevoegd; er zijn dus nog geen cijfers."),
    "contents": ("Contents", "Inhoud"),
    "summary": ("Summary", "Samenvatting"),
    "estimate_total": ("Estimated presumed victims", "Geschat aantal vermoedelijke slachtoffers"),
    "interval": ("95% interval", "95%-interval"),
    "individual_total": ("Seen as individual records", "Gezien als individuele registratie"),
    "noisy_total": ("Added from noisy counts (no consent)", "Toegevoegd uit ruisgetallen (geen toestemming)"),
    "skipped": ("No chart by {by}: no organisation released noisy counts by it, so it cannot be estimated.",
                "Geen grafiek naar {by}: geen organisatie gaf ruisgetallen daarnaar vrij, dus het is niet te schatten."),
    "minors_total": ("Of whom minors (under 18)", "Van wie minderjarig (jonger dan 18)"),
    "trend": ("Trend over periods", "Verloop over de perioden"),
    "trend_note": ("Hybrid estimate per period with its 95% interval; the dark inner bar is what individual records alone show.",
                   "Hybride schatting per periode met 95%-interval; de donkere binnenbalk is wat individuele registraties alleen laten zien."),
    "period": ("Period", "Periode"),
    "national_table": ("National table", "Nationale tabel"),
    "by": ("by", "naar"),
    "chart_by": ("Presumed victims by", "Vermoedelijke slachtoffers naar"),
    "category": ("Category", "Categorie"),
    "individual": ("Individual records", "Individuele registraties"),
    "noisy": ("Noisy counts (DP)", "Ruisgetallen (DP)"),
    "estimate": ("Estimate", "Schatting"),
    "se": ("Standard error", "Standaardfout"),
    "total": ("Total", "Totaal"),
    "minor": ("minor", "minderjarig"),
    "legend_estimate": ("Hybrid estimate", "Hybride schatting"),
    "legend_individual": ("Individual records only", "Alleen individuele registraties"),
    "legend_whisker": ("95% interval", "95%-interval"),
    "legend_minor": ("Minors (under 18)", "Minderjarigen (jonger dan 18)"),
    "consent_vs_hybrid": ("Individual records only (statutory or consent) versus the hybrid estimate",
                          "Alleen individuele registraties (wettelijk of met toestemming) versus de hybride schatting"),
    "consent_vs_hybrid_note": (
        "Individual records are the people reported with a lawful basis (statutory reporting by investigative bodies, or "
        "explicit consent). A registration built only on those misses everyone who did not consent. The hybrid estimate adds "
        "the differentially private counts that organisations released for those people.",
        "Individuele registraties zijn de personen die gemeld zijn met een wettelijke grondslag (wettelijke meldplicht van "
        "opsporingsinstanties, of uitdrukkelijke toestemming). Een registratie die alleen daarop steunt, mist iedereen die "
        "geen toestemming gaf. De hybride schatting telt daar de ruisgetallen bij op die organisaties voor die personen "
        "hebben vrijgegeven."),
    "consent_only_bar": ("Individual records (statutory or consent)", "Individuele registraties (wettelijk of toestemming)"),
    "axis_count": ("Presumed victims (number of people)", "Vermoedelijke slachtoffers (aantal personen)"),
    "axis_epsilon": ("Epsilon spent (privacy loss)", "Besteed epsilon (privacyverlies)"),
    "joint": ("Joint estimate (distinct people)", "Gezamenlijke schatting (unieke personen)"),
    "joint_interval": ("Joint 95% interval", "Gezamenlijk 95%-interval"),
    "joint_note": (
        "The joint estimate comes from the joint release: the organisations computed together, without showing each "
        "other their data, how many distinct people they reported, so a person known to several organisations counts once. "
        "Its cells are fitted together so that each breakdown adds up to its total, and its interval never starts "
        "below the people known individually. The estimate column adds the organisations' own figures and can count "
        "such a person more than once.",
        "De gezamenlijke schatting komt uit de gezamenlijke vrijgave: de organisaties berekenden samen, zonder elkaar hun "
        "gegevens te tonen, hoeveel unieke personen zij meldden, zodat iemand die bij meerdere organisaties bekend is één "
        "keer telt. De cellen zijn samen geschat, zodat elke uitsplitsing optelt tot het totaal, en het interval begint "
        "nooit onder de individueel bekende personen. De kolom schatting telt de eigen cijfers van de organisaties op "
        "en kan zo iemand vaker tellen."),
    "dark": ("Dark number: registered and estimated in all, per stratum",
             "Donker getal: geregistreerd en geschat totaal, per stratum"),
    "dark_note": (
        "Registered (inner bar) is everyone any organisation knows in the stratum, each person once, from the joint "
        "release. The estimated total (bar, with its 95% interval) adds the victims no organisation knows, estimated "
        "from how often the lists know the same people (multiple-systems estimation, with model choice repeated in "
        "every bootstrap replicate and the privacy noise re-added). It assumes a closed population within the year and "
        "allows for dependence between pairs of lists; victims that are hard to see for every list make it too low.",
        "Geregistreerd (binnenste balk) is iedereen die een organisatie in het stratum kent, elke persoon één keer, uit "
        "de gezamenlijke vrijgave. Het geschatte totaal (balk, met 95%-interval) telt daar de slachtoffers bij die geen "
        "organisatie kent, geschat uit hoe vaak de lijsten dezelfde mensen kennen (multiple-systems-schatting, met "
        "modelkeuze herhaald in elke bootstrap en de privacyruis opnieuw toegevoegd). De schatting neemt een gesloten "
        "populatie binnen het jaar aan en houdt rekening met afhankelijkheid tussen paren lijsten; slachtoffers die voor "
        "elke lijst moeilijk te zien zijn, maken haar te laag."),
    "dark_refused": ("no estimate", "geen schatting"),
    "hybrid_bar": ("Hybrid estimate", "Hybride schatting"),
    "share_seen": ("Share seen individually", "Deel individueel gezien"),
    "totals_differ": (
        "The estimates combine every released noisy table into one consistent set (weighted least squares, never below "
        "zero), so the tables add up to the same total. The noisy-counts column shows the raw sums before that step; "
        "they differ a little between tables because each table carries its own noise.",
        "De schattingen combineren alle vrijgegeven ruistabellen tot één samenhangend geheel (gewogen kleinste "
        "kwadraten, nooit onder nul), zodat de tabellen optellen tot hetzelfde totaal. De kolom ruisgetallen toont de "
        "ruwe sommen vóór die stap; die verschillen iets tussen tabellen omdat elke tabel eigen ruis draagt."),
    "budget": ("Privacy budget per organisation (for auditors)", "Privacybudget per organisatie (voor auditors)"),
    "budget_note": ("Epsilon spent in the period against the organisation's cap. Every accepted bundle counts, also ones "
                    "a later correction replaced, because their noisy counts were released; joint epsilon is given back "
                    "when the joint computation did not use the bundle's shares.",
                    "Besteed epsilon in de periode tegenover het plafond van de organisatie. Elke geaccepteerde bundel telt, "
                    "ook een die later is vervangen, omdat de ruisgetallen ervan al zijn vrijgegeven; gezamenlijke epsilon "
                    "wordt teruggegeven als de gezamenlijke berekening de delen van de bundel niet gebruikte."),
    "organisation": ("Organisation", "Organisatie"),
    "kind": ("Kind", "Soort"),
    "spent": ("Spent", "Besteed"),
    "cap": ("Cap", "Plafond"),
    "remaining": ("Remaining", "Resterend"),
    "releases": ("Bundles", "Bundels"),
    "over_cap": ("over the cap", "boven het plafond"),
    "no_budget": ("No organisation spent budget in this period.", "Geen organisatie heeft in deze periode budget besteed."),
    "notes": ("Notes", "Opmerkingen"),
    "linked": ("people were reported by more than one organisation and counted once",
               "personen zijn door meer dan één organisatie gemeld en één keer geteld"),
    "conflicting": ("of them with organisations disagreeing on a category", "van wie organisaties het over een categorie oneens zijn"),
    "explain": ("How to read these figures", "Hoe u deze cijfers leest"),
    "explain_interval": (
        "Each estimate is the number of people reported individually plus counts that carry deliberate random noise. "
        "The 95% interval is the range that, for the noise alone, contains the true number in 95 of 100 cases: "
        "if the interval is 120 to 160, the true count is very likely between those numbers. Narrow intervals mean "
        "most people were seen individually; wide intervals mean more of the figure comes from noisy counts. "
        "Small cells can show a negative lower bound or even a negative estimate: that is the noise, "
        "not a real number of people, and it is shown rather than hidden so that totals still add up.",
        "Elke schatting is het aantal individueel gemelde personen plus tellingen waaraan bewust willekeurige ruis is "
        "toegevoegd. Het 95%-interval is het bereik dat, wat de ruis betreft, in 95 van de 100 gevallen het werkelijke "
        "aantal bevat: loopt het interval van 120 tot 160, dan ligt het werkelijke aantal zeer waarschijnlijk daartussen. "
        "Een smal interval betekent dat de meeste personen individueel zijn gezien; een breed interval dat meer van het "
        "cijfer uit ruisgetallen komt. Kleine cellen kunnen een negatieve ondergrens of zelfs een negatieve schatting "
        "hebben: dat is de ruis, geen echt aantal personen, en het wordt getoond zodat de totalen blijven kloppen."),
    "explain_epsilon": (
        "Epsilon measures how much a release can reveal about any one person who did not consent. The smaller it is, "
        "the more noise and the stronger the protection. Each organisation may spend at most its cap per year "
        "(by default 1.0), split over the tables it releases; with epsilon 1 the noise added to a count is typically "
        "a few people. The coordinator refuses any bundle that would take an organisation over its cap.",
        "Epsilon geeft aan hoeveel een vrijgave hooguit kan verraden over één persoon die geen toestemming gaf. Hoe "
        "kleiner, hoe meer ruis en hoe sterker de bescherming. Elke organisatie mag per jaar hooguit haar plafond besteden "
        "(standaard 1,0), verdeeld over de tabellen die zij vrijgeeft; bij epsilon 1 is de ruis op een telling meestal "
        "enkele personen. De coördinator weigert elke bundel die een organisatie boven haar plafond zou brengen."),
    "explain_limits": (
        "Known limits (SECURITY.md states them in full): the noise protects the people without a lawful basis at one "
        "organisation in one period, each to at most that organisation's cap; a person reported in several years is "
        "covered by the sum of those years' budgets. Records with a lawful basis (statutory or consent) travel "
        "individually, pseudonymised, so an organisation's totals of those records are exact at the coordinator. "
        "A person known to two organisations, with consent at one and none at the other, is counted twice in the "
        "estimate, and one person under two spellings of a name or without a date of birth is two people, also in "
        "the joint estimate. The figures rest on what organisations send: one that invents records or skips the "
        "noise harms its own people's privacy and the figures' accuracy, and these figures cannot show it.",
        "Bekende beperkingen (SECURITY.md beschrijft ze volledig): de ruis beschermt de personen zonder wettelijke "
        "grondslag bij één organisatie in één periode, elk tot hooguit het plafond van die organisatie; wie in "
        "meerdere jaren wordt gemeld, valt onder de som van de budgetten van die jaren. Registraties met een "
        "wettelijke grondslag (meldplicht of toestemming) gaan individueel, gepseudonimiseerd, mee, zodat de "
        "coördinator de totalen daarvan per organisatie exact kent. Iemand die bij twee organisaties bekend is, met "
        "toestemming bij de ene en zonder bij de andere, telt in de schatting twee keer mee, en één persoon onder twee "
        "spellingen van een naam of zonder geboortedatum telt als twee personen, ook in de gezamenlijke schatting. "
        "De cijfers steunen op wat organisaties insturen: een organisatie die registraties verzint of de ruis "
        "overslaat, schaadt de privacy van haar eigen personen en de juistheid van de cijfers, en deze cijfers laten "
        "dat niet zien."),
    "footer": ("Generated by registration-aggregator from the coordinator store; this file opens offline and loads nothing.",
               "Gemaakt door registration-aggregator uit de database van de coördinator; dit bestand werkt offline en laadt niets."),
}


def texts(lang: str) -> dict[str, str]:
    index = 1 if lang == "nl" else 0
    return {key: pair[index] for key, pair in TEXT.items()}


# ------------------------------------------------------------------ chart geometry (inline SVG)

@dataclass
class Bar:
    label: str
    y: float
    x: float  # left edge of the estimate bar
    width: float
    ind_x: float
    ind_width: float
    whisker_left: float
    whisker_right: float
    value: str
    highlight: bool = False


@dataclass
class Tick:
    x: float
    text: str


@dataclass
class Chart:
    id: str
    title: str
    width: int
    height: int
    plot_left: int
    plot_right: int
    plot_top: int
    plot_bottom: int
    zero_x: float
    bars: list[Bar]
    ticks: list[Tick]
    bar_height: int
    row_height: int
    axis_title: str = ""


def nice_step(span: float, target: int = 5) -> float:
    """A round tick step (1, 2 or 5 times a power of ten) giving about `target` ticks over `span`."""
    if span <= 0:
        return 1.0
    raw = span / target
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if raw <= factor * power:
            return max(1.0, factor * power)
    return max(1.0, 10 * power)


def fmt_int(value: float, lang: str) -> str:
    text = f"{round(value):,}"
    return text.replace(",", ".") if lang == "nl" else text


def fmt_dec(value: float, lang: str, places: int = 1) -> str:
    text = f"{value:,.{places}f}"
    if lang == "nl":
        text = text.replace(",", "_").replace(".", ",").replace("_", ".")
    return text


def fmt_fraction(text: str, lang: str) -> str:
    value = float(Fraction(text))
    out = f"{value:.3f}".rstrip("0").rstrip(".")
    return out.replace(".", ",") if lang == "nl" else out


def bar_chart(chart_id: str, title: str, rows: list[dict[str, Any]], lang: str, *, label_width: int = 230) -> Chart:
    """Horizontal bars (estimate) with interval whiskers and an inner bar for individual records.

    rows: dicts with label, estimate, lower, upper, individual and optional highlight."""
    width, value_width, row_height, bar_height = 900, 190, 34, 18
    plot_left, plot_right = label_width, width - value_width
    top = 10
    bottom = top + row_height * len(rows)
    lo = min([0.0, *(r["lower"] for r in rows), *(r["estimate"] for r in rows)])
    hi = max([1.0, *(r["upper"] for r in rows), *(r["estimate"] for r in rows), *(r["individual"] for r in rows)])
    step = nice_step(hi - lo)
    # pad the axis to a fifth of a tick step (a small negative whisker must not take a whole step of width)
    lo = math.floor(lo / (step / 5)) * (step / 5)
    hi = math.ceil(hi / step) * step
    scale = (plot_right - plot_left) / (hi - lo)

    def sx(v: float) -> float:
        return round(plot_left + (v - lo) * scale, 2)

    zero = sx(0)
    bars = []
    for i, r in enumerate(rows):
        y = top + i * row_height + (row_height - bar_height) / 2
        e, ind = sx(r["estimate"]), sx(r["individual"])
        bars.append(Bar(
            label=r["label"], y=y, x=min(zero, e), width=max(abs(e - zero), 0.0),
            ind_x=min(zero, ind), ind_width=abs(ind - zero),
            whisker_left=sx(r["lower"]), whisker_right=sx(r["upper"]),
            value=(fmt_int(r["estimate"], lang) if r["upper"] <= r["lower"] else
                   f"{fmt_int(r['estimate'], lang)}  ({fmt_int(r['lower'], lang)} – {fmt_int(r['upper'], lang)})"),
            highlight=bool(r.get("highlight")),
        ))
    ticks = []
    value = math.ceil(lo / step) * step
    while value <= hi + step / 2:
        ticks.append(Tick(sx(value), fmt_int(value, lang)))
        value += step
    return Chart(chart_id, title, width, bottom + 50, plot_left, plot_right, top, bottom, zero, bars, ticks,
                 bar_height, row_height, texts(lang)["axis_count"])


@dataclass
class BudgetBar:
    org: str
    kind: str
    spent: str
    cap: str
    remaining: str
    releases: int
    y: float
    cap_width: float
    spent_width: float
    over: bool


@dataclass
class BudgetChart:
    width: int
    height: int
    plot_left: int
    plot_right: int
    bars: list[BudgetBar]
    ticks: list[Tick]
    axis_title: str = ""


def budget_chart(budgets: list[Any], lang: str) -> BudgetChart:
    width, label_width, value_width, row_height = 900, 230, 190, 30
    plot_left, plot_right = label_width, width - value_width
    hi = max([1.0, *(float(Fraction(b.cap)) for b in budgets), *(float(Fraction(b.spent)) for b in budgets)])
    scale = (plot_right - plot_left) / hi
    bars = []
    for i, b in enumerate(budgets):
        spent, cap = Fraction(b.spent), Fraction(b.cap)
        bars.append(BudgetBar(
            org=b.org, kind=label("kind", b.kind, lang), spent=fmt_fraction(b.spent, lang), cap=fmt_fraction(b.cap, lang),
            remaining=fmt_fraction(b.remaining, lang), releases=len(b.releases), y=10 + i * row_height + 6,
            cap_width=round(float(cap) * scale, 2), spent_width=round(float(spent) * scale, 2), over=spent > cap,
        ))
    ticks = [Tick(round(plot_left + v * scale, 2), fmt_dec(v, lang, 2 if hi <= 1 else 1)) for v in
             [hi * k / 4 for k in range(5)]]
    return BudgetChart(width, 10 + row_height * len(budgets) + 50, plot_left, plot_right, bars, ticks,
                       texts(lang)["axis_epsilon"])


# ------------------------------------------------------------------ assembling the report

@dataclass
class ReportResult:
    out: str
    lang: str
    periods: list[int]
    bytes: int
    charts: int
    table_rows: int
    organisations: int
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "out": self.out, "lang": self.lang, "periods": self.periods, "bytes": self.bytes, "charts": self.charts,
            "table_rows": self.table_rows, "organisations": self.organisations, "notes": self.notes,
        }


def _row_view(row: Any, text: str, lang: str, *, highlight: bool = False, total: bool = False) -> dict[str, Any]:
    return {
        "label": text, "individual": row.individual, "noisy": row.noisy, "estimate": row.estimate,
        "lower": row.lower, "upper": row.upper, "se": row.se, "highlight": highlight, "total": total,
        "individual_text": fmt_int(row.individual, lang), "noisy_text": fmt_int(row.noisy, lang),
        "estimate_text": fmt_int(row.estimate, lang), "se_text": fmt_dec(row.se, lang),
        "interval_text": f"{fmt_dec(row.lower, lang)} – {fmt_dec(row.upper, lang)}",
        # noise can push an estimate below the records seen; the share is then shown as 100%, never above
        "share_text": (f"{min(100, round(100 * row.individual / row.estimate))}%" if row.estimate > 0 else "–"),
        "joint_text": fmt_int(row.joint["estimate"], lang) if row.joint else "–",
        "joint_interval_text": (f"{fmt_dec(row.joint['lower'], lang)} – {fmt_dec(row.joint['upper'], lang)}"
                                if row.joint else "–"),
    }


def build_context(db_path: Path, lang: str = "en", period: int | None = None,
                  dark_numbers: dict[int, Any] | None = None) -> dict[str, Any]:
    """Everything the template needs, computed from the store (read-only); `dark_numbers` (period -> a
    darknumber.DarkNumberReport already computed, e.g. by the demo) is shown as given instead of estimated again."""
    from ..errors import BreakdownNotReleased
    from .national import national_table, sum_rows
    from .budget import budget_report

    if lang not in LANGS:
        raise UsageError(f"language must be one of: {', '.join(LANGS)}", "lang")
    db_path = Path(db_path)
    t = texts(lang)
    totals = national_table(db_path, period, [])
    tables = {}
    skipped = []
    for by in BREAKDOWN_CHARTS:
        try:
            tables[by] = national_table(db_path, period, [by])
        except BreakdownNotReleased:  # no release covers it: no chart rather than records passed off as estimates
            skipped.append(t["skipped"].format(by=dimension_label(by, lang).lower()))
    periods = totals.periods
    budgets = budget_report(db_path, period=period).budgets
    notes = list(dict.fromkeys([*totals.notes, *(n for tb in tables.values() for n in tb.notes), *skipped]))

    sections = []
    chart_count = 0
    table_rows = 0
    for per in periods:
        total_row = totals.total(per)
        section: dict[str, Any] = {"period": per, "total": _row_view(total_row, t["total"], lang, total=True),
                                   "has_joint": total_row.joint is not None}
        # minors: under_15 + 15_17, variances add
        section["minors"] = None
        if "age_band" in tables:
            minors = [r for r in tables["age_band"].cells(per) if r.dims["age_band"] in MINOR_BANDS]
            minor_est, _, minor_low, minor_high = sum_rows(minors)
            section["minors"] = {
                "estimate_text": fmt_int(minor_est, lang) + ("*" if any(r.incomplete for r in minors) else ""),
                "interval_text": f"{fmt_dec(minor_low, lang)} – {fmt_dec(minor_high, lang)}",
            }
        breakdowns = []
        for by in tables:
            rows = []
            for r in tables[by].cells(per):
                code = r.dims[by]
                minor = by == "age_band" and code in MINOR_BANDS
                text = label(by, code, lang) + (f" ({t['minor']})" if minor else "") + (" *" if r.incomplete else "")
                rows.append(_row_view(r, text, lang, highlight=minor))
            chart = bar_chart(f"chart-{by}-{per}", f"{t['chart_by']} {dimension_label(by, lang).lower()}, {per}", rows, lang)
            chart_count += 1
            table_rows += len(rows) + 1
            breakdowns.append({
                "by": by, "title": dimension_label(by, lang), "rows": rows, "chart": chart,
                "total": _row_view(tables[by].total(per), t["total"], lang, total=True),
                "has_minors": by == "age_band",
                "has_joint": any(r.joint for r in [*tables[by].cells(per), tables[by].total(per)]),
            })
        section["breakdowns"] = breakdowns
        compare_rows = [
            {"label": t["consent_only_bar"], "estimate": total_row.individual, "lower": total_row.individual,
             "upper": total_row.individual, "individual": total_row.individual},
            {"label": t["hybrid_bar"], "estimate": total_row.estimate, "lower": total_row.lower,
             "upper": total_row.upper, "individual": total_row.individual},
        ]
        section["compare_chart"] = bar_chart(f"chart-compare-{per}", f"{t['consent_vs_hybrid']}, {per}", compare_rows,
                                             lang, label_width=200)
        chart_count += 1
        section["dark_chart"], section["dark_refused"] = _dark_number_chart(db_path, per, lang,
                                                                            (dark_numbers or {}).get(per))
        chart_count += 1 if section["dark_chart"] else 0
        per_budgets = [b for b in budgets if b.period == per]
        section["budgets"] = per_budgets
        section["budget_chart"] = budget_chart(per_budgets, lang) if per_budgets else None
        chart_count += 1 if per_budgets else 0
        sections.append(section)

    trend = None
    if len(periods) > 1:
        trend_rows = [_row_view(totals.total(p), str(p), lang) for p in periods]
        trend = bar_chart("chart-trend", t["trend"], trend_rows, lang, label_width=120)
        chart_count += 1

    extra_notes = []
    if totals.linked_people:
        extra_notes.append(f"{fmt_int(totals.linked_people, lang)} {t['linked']}"
                           + (f"; {fmt_int(totals.conflicting_people, lang)} {t['conflicting']}" if totals.conflicting_people else ""))
    return {
        "t": t, "lang": lang, "db_name": db_path.name, "periods": periods, "sections": sections, "trend": trend,
        "notes": [*notes, *extra_notes], "generated": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "_charts": chart_count, "_table_rows": table_rows, "_orgs": len({b.org for b in budgets}),
    }


def _dark_number_chart(db_path: Path, period: int, lang: str, report: Any = None) -> tuple[Chart | None, list[str]]:
    """The dark-number chart of a period whose joint result opened list overlaps (None without one), and the strata
    that could not be estimated (named, never drawn as a bar)."""
    from .darknumber import REPORT_BOOTSTRAP, NoDarkNumber, dark_number

    if report is None:
        try:
            report = dark_number(db_path, period, n_bootstrap=REPORT_BOOTSTRAP, seed=period)
        except NoDarkNumber:
            return None, []
    rows = [{"label": r.stratum, "estimate": r.estimate, "lower": r.lower, "upper": r.upper,
             "individual": r.registered} for r in report.rows if r.estimate is not None and r.lower is not None]
    refused = [r.stratum for r in report.rows if r.estimate is None or r.lower is None]
    t = texts(lang)
    chart = bar_chart(f"chart-dark-{period}", f"{t['dark']}, {period}", rows, lang) if rows else None
    return chart, refused


def render_html(context: dict[str, Any]) -> str:
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    env = Environment(
        loader=PackageLoader("aggregator.coordinator", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template("report.html.j2").render(**context)


def render_report(db_path: Path, out: Path, lang: str = "en", period: int | None = None,
                  dark_numbers: dict[int, Any] | None = None) -> ReportResult:
    """Write the self-contained HTML report for the store at `db_path` to `out` (atomically)."""
    from ..util.files import atomic_write

    context = build_context(db_path, lang, period, dark_numbers)
    html = render_html(context).encode("utf-8")
    out = Path(out)
    if out.is_dir():
        raise InputError(f"the report path {out} is a folder; name the HTML file to write, e.g. {out / 'report.html'}")
    try:
        atomic_write(out, html)
    except OSError as exc:
        raise InputError(f"cannot write the report to {out}: {exc.strerror or 'write failed'}") from None
    return ReportResult(
        out=str(out), lang=lang, periods=context["periods"], bytes=len(html), charts=context["_charts"],
        table_rows=context["_table_rows"], organisations=context["_orgs"], notes=context["notes"],
    )
