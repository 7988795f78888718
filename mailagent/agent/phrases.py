"""The offline model's sentences, per language, in one register each: German in "Sie", Spanish in
"tú" (as the Spanish articles are written), so that a reply that quotes an article does not
switch between them. The sign-off is localized too: `[agent] sign_offs` per language, else the
built-in one with the company's name; `[agent] sign_off` is the English one."""

from __future__ import annotations

from collections.abc import Mapping

PHRASES: dict[str, dict[str, str]] = {
    "en": {"refund_done": "I have refunded {amount} {currency} for order {order}. It usually shows on your "
                          "statement within 5 to 10 business days.",
           "refund_refused": "We looked at your refund request for order {order} and could not approve it as it "
                             "stands. A colleague from our billing team will get back to you personally about it.",
           "incident": "Yes, we are aware of a problem: {title} (status: {status}, since {since} UTC). {update}",
           "status_page": "You can follow the updates at {url}.",
           "no_incident": "There is no ongoing incident on our side right now.",
           "invoice": "The invoice for order {order} is {invoice}; you can download it here: {url}",
           "hello": "Hi {name},", "thanks": "Thanks for getting in touch.",
           "intro": "Here is what our guide “{title}” says:",
           "more": "The full article: {url}", "outro": "If anything is still unclear, just reply to this email.",
           "rest": "A colleague from our team will get back to you personally about your other question.",
           "human": "Thanks for your message. A colleague from our team will look into this personally and "
                    "get back to you as soon as possible.",
           "sign_off": "Best regards,\nThe {company} support team"},
    "de": {"refund_done": "ich habe {amount} {currency} für die Bestellung {order} erstattet. Die Gutschrift "
                          "erscheint meist innerhalb von 5 bis 10 Werktagen.",
           "refund_refused": "wir haben Ihre Erstattungsanfrage für die Bestellung {order} geprüft und können sie "
                             "so nicht genehmigen. Eine Kollegin oder ein Kollege aus unserem Billing-Team meldet "
                             "sich dazu persönlich bei Ihnen.",
           "incident": "ja, uns ist ein Problem bekannt: {title} (Status: {status}, seit {since} UTC). {update}",
           "status_page": "Aktuelle Informationen: {url}.",
           "no_incident": "derzeit gibt es bei uns keine bekannte Störung.",
           "invoice": "die Rechnung zur Bestellung {order} ist {invoice}; Sie können sie hier herunterladen: {url}",
           "hello": "Hallo {name},", "thanks": "vielen Dank für Ihre Nachricht.",
           "intro": "Dazu steht in unserer Anleitung „{title}“:",
           "more": "Den vollständigen Artikel finden Sie hier: {url}",
           "outro": "Wenn noch etwas unklar ist, antworten Sie einfach auf diese E-Mail.",
           "rest": "Zu Ihrer anderen Frage meldet sich eine Kollegin oder ein Kollege aus unserem Team persönlich "
                   "bei Ihnen.",
           "human": "vielen Dank für Ihre Nachricht. Eine Kollegin oder ein Kollege aus unserem Team kümmert "
                    "sich persönlich darum und meldet sich so bald wie möglich bei Ihnen.",
           "sign_off": "Viele Grüße\nIhr Support-Team von {company}"},
    "es": {"refund_done": "he reembolsado {amount} {currency} del pedido {order}. Suele aparecer en tu "
                          "extracto en un plazo de 5 a 10 días hábiles.",
           "refund_refused": "hemos revisado tu solicitud de reembolso del pedido {order} y no podemos aprobarla "
                             "tal como está. Un compañero de nuestro equipo de facturación te escribirá "
                             "personalmente.",
           "incident": "sí, conocemos un problema: {title} (estado: {status}, desde {since} UTC). {update}",
           "status_page": "Puedes seguir las novedades en {url}.",
           "no_incident": "ahora mismo no hay ninguna incidencia abierta por nuestra parte.",
           "invoice": "la factura del pedido {order} es {invoice}; puedes descargarla aquí: {url}",
           "hello": "Hola, {name}:", "thanks": "gracias por escribirnos.",
           "intro": "Esto es lo que explica nuestra guía «{title}»:",
           "more": "El artículo completo: {url}", "outro": "Si algo no queda claro, responde a este correo.",
           "rest": "Sobre tu otra pregunta, un compañero de nuestro equipo te escribirá personalmente.",
           "human": "gracias por tu mensaje. Un compañero de nuestro equipo lo revisará personalmente y te "
                    "responderá lo antes posible.",
           "sign_off": "Un saludo,\nEl equipo de soporte de {company}"},
}

# Only the sign-off and the hand-over to a person exist in languages without articles.
SIGN_OFFS = {"fr": "Cordialement,\nL'équipe support de {company}"}
HUMAN = {"fr": "Bonjour {name},\n\nmerci pour votre message. Un membre de notre équipe va s'en occuper "
               "personnellement et vous répondra dès que possible."}


def sign_off(language: str, *, company: str, english: str, configured: Mapping[str, str]) -> str:
    """The sign-off in the reply's language: configured for it, else built in, else English."""
    if language in configured:
        return configured[language]
    if language == "en":
        return english
    built_in = PHRASES.get(language, {}).get("sign_off") or SIGN_OFFS.get(language)
    return built_in.format(company=company) if built_in else english
