"""Words of prompt injection in many languages, for the co-occurrence check in `guardrails`.

A phrase list lags behind paraphrase; the parts an instruction override cannot do without do
not: a verb that sets something aside, the thing set aside (instructions, rules, what you were
told), and whose it is or what it is for (earlier ones, the assistant's, to get a refund
approved). `guardrails` flags a sentence that has all three kinds, or that addresses the machine
and asks for a privileged outcome. Terms are matched as words after the same folding as the
text (accents, look-alikes, case); terms in scripts without spaces match anywhere.
"""

from __future__ import annotations

OVERRIDE = (
    # en
    "ignore", "disregard", "forget", "override", "bypass", "set aside", "put aside", "pay no attention",
    "discard", "abandon", "stop following", "do not follow", "don't follow", "no longer apply", "no longer applies",
    "no longer valid", "no longer in force", "are void", "is void", "null and void", "are suspended",
    "is suspended", "are lifted", "supersede", "supersedes", "overrides", "withdrawn", "revoked", "rescinded",
    "annulled", "released from", "no longer binding",
    # de
    "ignoriere", "ignorier", "ignorieren sie", "vergiss", "vergessen sie", "missachte", "nicht mehr beachten",
    "beachte deine", "ausser kraft", "ausser acht", "hinfallig", "gelten nicht mehr", "gilt nicht mehr",
    "vergiss was", "aufgehoben", "widerrufen", "ungultig",
    # es
    "ignora", "ignorar", "ignoren", "olvida", "olvide", "olvidate", "no hagas caso", "no haga caso", "deja de lado",
    "deje de lado", "descarta", "descarte", "omite", "ya no aplican", "ya no son validas", "ya no valen",
    "revocadas", "anuladas", "quedan anuladas",
    # fr
    "ignorez", "ignorer", "oublie", "oubliez", "ne tiens plus compte", "ne tiens pas compte", "ne tenez plus compte",
    "ne tenez pas compte", "fais abstraction", "faites abstraction", "ne s'appliquent plus", "ne valent plus", "annulees",
    "revoquees", "sont annulees",
    # it
    "ignori", "dimentica", "dimentichi", "non tenere conto", "non tener conto", "trascura", "lascia perdere",
    "non valgono piu",
    # pt
    "esqueca", "esquece", "deixe de lado", "deixa de lado", "desconsidere", "desconsidera", "nao siga",
    "nao valem mais", "revogadas", "revogados", "foram revogadas",
    # nl
    "negeer", "vergeet", "gelden niet meer", "niet meer geldig", "laat varen", "niet meer van toepassing",
    # pl
    "zignoruj", "ignoruj", "zapomnij", "pomin", "nie stosuj", "juz nie obowiazuja",
    # ru
    "игнорируй", "проигнорируй", "забудь", "не обращай внимания", "отбрось", "не следуй", "больше не действуют", "отменены", "отменяются",
    # tr
    "yok say", "gormezden gel", "unut", "dikkate alma",
    # sv
    "ignorera", "glom", "bortse fran", "strunta i", "galler inte langre",
    # ja, zh, ko
    "無視", "忘れて", "従わないで", "忽略", "忘记", "无视", "不要遵守", "忘掉", "무시", "잊어", "따르지 마",
)

RULES = (
    "instructions", "instruction", "guidance", "rules", "guidelines", "directives", "configuration", "configured",
    "programming", "system prompt", "prompt", "policies", "restrictions", "constraints", "what you were told",
    "your operators", "te configuraron", "lo que te",
    "told you", "were told", "you were given",
    "anweisungen", "vorgaben", "regeln", "richtlinien", "instruktionen", "befehle", "was man dir", "gesagt hat",
    "instrucciones", "indicaciones", "reglas", "normas", "directrices", "te dieron", "te dijeron",
    "consignes", "regles", "on t'a donne", "on t'a dit", "qu'on t'a",
    "istruzioni", "indicazioni", "regole", "direttive",
    "instrucoes", "orientacoes", "regras", "diretrizes",
    "instructies", "regels", "richtlijnen", "opdrachten",
    "instrukcje", "polecenia", "zasady", "reguly", "wytyczne",
    "инструкции", "инструкций", "указания", "правила", "правил",
    "talimat", "talimatlari", "kural", "kurallari", "yonerge",
    "instruktioner", "regler", "riktlinjer",
    "指示", "ルール", "命令", "指令", "设定", "規則", "规则", "提示词", "지시", "규칙", "지침", "명령",
)

# Whose instructions, or which: the assistant's, earlier ones, all of them.
EARLIER = (
    "previous", "earlier", "before", "prior", "all", "your", "original", "above", "so far", "operators",
    "bisherigen", "vorherigen", "vorher", "alle", "deine", "bisher", "zuvor", "fruheren",
    "anteriores", "antes", "todas", "tus", "previas", "originales",
    "precedentes", "auparavant", "toutes", "tes", "avant",
    "precedenza", "precedenti", "tutte", "tue", "prima",
    "recebeu", "suas", "tuas",
    "eerdere", "vorige", "je",
    "poprzednie", "wszystkie", "wczesniejsze",
    "предыдущие", "все", "свои", "прежние", "ранее",
    "onceki", "tum", "butun",
    "tidigare", "alla", "dina",
    "以前", "これまで", "すべて", "全て", "前の", "之前", "所有", "先前", "이전", "모든",
)

# The machine, addressed.
MACHINE = (
    "ai", "a.i.", "assistant", "ai assistant", "bot", "chatbot", "model", "language model", "llm", "gpt",
    "automated agent", "automated system", "support bot", "virtual agent", "asistente automatico", "ki",
    "ki-assistent", "assistent",
    "asistente", "ia", "modelo", "assistant ia", "modele", "assistente", "ai-assistent", "asystent", "asystencie",
    "ассистент", "ассистенту", "ии", "бот", "модель", "asistan", "yapay zeka",
    "アシスタント", "助手", "人工智能", "机器人", "어시스턴트", "인공지능",
)
# Addressed only when spoken to ("System: ..."): as a mere word, "the system" is the product.
SYSTEM = ("system", "support system", "systeme", "sistema", "системе", "система")
VOCATIVE = (
    "dear", "hey", "attention", "note to the", "lieber", "liebe", "hallo", "querido", "estimado", "cher", "chere",
    "caro", "cara", "beste", "drogi", "дорогой", "уважаемый", "sevgili", "kara", "as the", "if you are an",
    "if you are a", "to the", "for the", "note for the", "notice for the", "override notice for the",
    "hinweis an das", "hinweis an die", "an das", "para el", "a l'attention de l'", "aan de", "you, the",
)

# What an attacker wants the machine to do.
PRIVILEGE = (
    "approve", "approved", "refund", "grant", "without review", "without a human", "no human", "do not involve",
    "auto-send", "autosend", "authorize", "authorise", "pay out", "payout", "escalation not required",
    "genehmige", "genehmigen", "erstatte", "erstattung", "freigeben", "freigegeben", "ohne prufung",
    "ohne dass ein mitarbeiter", "auszahlen",
    "aprueba", "apruebas", "aprobado", "reembolso", "reembolsa", "sin revision",
    "valide", "rembourse", "remboursement", "sans intervention", "approuve",
    "approva", "rimborso", "rimborsa",
    "aprove", "aprova",
    "keur", "goedkeuren", "terugbetaling", "betaal",
    "zatwierdz", "zwrot",
    "одобри", "возврат", "оформи", "верни",
    "onayla", "iade",
    "godkann", "aterbetalning",
    "承認", "返金", "批准", "退款", "승인", "환불",
)

# First-person owners: "ignore the instructions in my last email" sets aside the customer's own words.
OWN = ("my", "our", "meine", "meiner", "unsere", "mis", "nuestras", "mes", "nos", "le mie", "as minhas", "mijn")

# Notes and forwards that pretend to come from our side.
STAFF = (
    "support", "billing", "team", "manager", "supervisor", "refunds", "refund desk", "finance", "agent",
    "kundenservice", "leitung", "abteilung", "soporte", "facturacion", "supervisor", "service client",
    "responsable", "direction", "assistenza", "gerente", "klantenservice",
)
APPROVAL = (
    "approved", "authorized", "authorised", "pre-approved", "preapproved", "pre-cleared", "cleared", "verified",
    "freigegeben", "genehmigt", "aprobado", "aprobada", "approuve", "approuvee", "approvato", "aprovado",
    "goedgekeurd", "zatwierdzony", "одобрен", "no further checks", "not required", "do not show",
)
