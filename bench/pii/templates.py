"""Hand-written contexts of the corpus: prompts and completions in several languages and formats.

A slot ⟦name⟧ is filled by a generator (generators.py): `email`, `phone.FR.intl` (region, style;
`*` for any), `~date` (a hard negative), `=name` (a filler, never labelled). A slot ending in
`|json` is written as it would be inside a JSON string (a PEM body with \\n escapes) and
labelled as written. DEV and HELDOUT share no template: the held-out set was written apart, in
other words and other formats, so that tuning on dev cannot learn its sentences.
"""

# ruff: noqa: RUF001  (fullwidth punctuation and dashes are the languages' own)
from __future__ import annotations

# (language, format, template)
Template = tuple[str, str, str]

DEV: list[Template] = [
    # --- e-mail ---------------------------------------------------------------------------------
    ("en", "chat", "Hi, I'm ⟦=name⟧. Please send the signed contract to ⟦email⟧ and cc my "
                   "assistant at ⟦email⟧."),
    ("fr", "chat", "Bonjour, pouvez-vous renvoyer la facture à ⟦email⟧ ? Mon ancienne adresse "
                   "(⟦email.obf⟧) ne fonctionne plus."),
    ("de", "chat", "Hallo, meine neue E-Mail-Adresse lautet ⟦email.idn⟧ – bitte im CRM "
                   "aktualisieren. Die alte war ⟦email⟧."),
    ("es", "chat", "Escríbeme a ⟦email⟧ o, si no contesto, a ⟦email.plus⟧. Gracias."),
    ("ja", "chat", "お問い合わせは⟦email⟧までご連絡ください。担当：⟦=name⟧"),
    ("hi", "chat", "कृपया रिपोर्ट ⟦email.eai⟧ पर भेजें, और कॉपी ⟦email⟧ को भी।"),
    ("en-IN", "chat", "Kindly revert back on ⟦email⟧ at the earliest and do the needful. "
                      "My alternate id is ⟦email.obf⟧."),
    ("pt", "chat", "Olá! Meu e-mail é ⟦email⟧, pode me mandar o boleto? Se preferir, "
                   "⟦email.quoted⟧ também funciona."),
    ("en", "chat", "Can you write a polite reply to ⟦email.quoted⟧ declining the meeting on "
                   "⟦~date.long⟧ at ⟦~time⟧?"),
    ("en", "url", "Password reset link: https://app.⟦=company⟧.example/reset?email=⟦email.urlenc⟧"
                  "&expires=⟦~timestamp.epoch_s⟧"),
    # --- phone ----------------------------------------------------------------------------------
    ("en", "chat", "You can reach me on ⟦phone.US⟧ after 5pm, or at my London office "
                   "⟦phone.GB⟧."),
    ("fr", "chat", "Rappelez-moi au ⟦phone.FR.national⟧ ou sur mon portable ⟦phone.FR.intl⟧, "
                   "merci. Commande ⟦~order.po⟧."),
    ("de", "chat", "Rückruf bitte unter ⟦phone.DE⟧ (mobil) oder ⟦phone.AT⟧ (Büro Wien), "
                   "am besten vor ⟦~time⟧."),
    ("es", "chat", "Mi número es ⟦phone.ES⟧; para la oficina de México marca ⟦phone.MX⟧ o "
                   "Bogotá ⟦phone.CO⟧."),
    ("ja", "chat", "電話番号は⟦phone.JP.national⟧です。海外からは⟦phone.JP.intl⟧へお願いします。"),
    ("en-IN", "chat", "Pls call on ⟦phone.IN⟧, whatsapp also same number. Landline "
                      "⟦phone.IN.national⟧."),
    ("pt", "chat", "Me liga no ⟦phone.BR⟧ ou no fixo de Lisboa ⟦phone.PT⟧."),
    ("it", "chat", "Il mio cellulare è ⟦phone.IT⟧, chiamami pure dopo le ⟦~time⟧."),
    ("en", "chat", "Our team in Sydney is on ⟦phone.AU⟧, Singapore on ⟦phone.SG⟧ and Dubai on "
                   "⟦phone.AE⟧."),
    ("zh", "chat", "我的手机号是⟦phone.CN⟧，首尔办公室是⟦phone.KR⟧。"),
    ("en", "csv", "name,role,phone\n⟦=name⟧,driver,⟦phone.*.e164⟧\n⟦=name⟧,dispatch,"
                  "⟦phone.*.dashes⟧\n⟦=name⟧,manager,⟦phone.*.dots⟧\n⟦=name⟧,support,"
                  "⟦phone.ZA⟧\n⟦=name⟧,sales,⟦phone.NG⟧"),
    ("en", "markdown", "**Contacts**\n\n- Zürich: ⟦phone.CH.trunk0⟧\n- Amsterdam: ⟦phone.NL⟧\n"
                       "- Stockholm: ⟦phone.SE⟧\n- Warsaw: ⟦phone.PL.intl00⟧\n- Dublin: "
                       "[call](tel:⟦phone.IE.rfc3966⟧)"),
    # --- cards ----------------------------------------------------------------------------------
    ("en", "chat", "My card ⟦card⟧ was charged twice for order ⟦~order⟧ on ⟦~date⟧."),
    ("fr", "chat", "Voici ma carte : ⟦card⟧, expiration 09/27. Le débit de ⟦~amount⟧ "
                   "n'apparaît pas."),
    ("de", "chat", "Bitte belasten Sie die Kreditkarte ⟦card⟧ mit ⟦~amount⟧ (Rechnung "
                   "⟦~order.invoice⟧)."),
    ("es", "chat", "Pagué con la tarjeta ⟦card⟧ pero el pedido ⟦~order.digits16⟧ no aparece."),
    ("ja", "chat", "クレジットカード番号：⟦card⟧ で決済しました。"
                   "注文番号は⟦~order.digits12⟧です。"),
    ("pt", "chat", "O número do cartão é ⟦card⟧ e o CPF do titular ⟦nid.br_cpf⟧."),
    ("en", "json", '{"customer": {"name": "⟦=name⟧", "card_number": "⟦card.*.none⟧", '
                   '"billing_zip": "⟦~postcode⟧"}, "amount": 129.9, "ts": '
                   '⟦~timestamp.epoch_us_luhn⟧}'),
    # --- IBAN and bank accounts -----------------------------------------------------------------
    ("de", "chat", "Überweisen Sie den Betrag bitte auf IBAN ⟦iban.DE⟧ (Kontoinhaber: "
                   "⟦=name⟧), Verwendungszweck ⟦~order.invoice⟧."),
    ("fr", "chat", "Mon RIB : IBAN ⟦iban.FR⟧, BIC BNPAFRPPXXX. Merci de rembourser "
                   "⟦~amount⟧."),
    ("es", "chat", "Hazme la transferencia a ⟦iban.ES⟧, concepto: alquiler de ⟦~date.long⟧."),
    ("en", "chat", "Wire the deposit to ⟦iban⟧ please; reference ⟦~ticket⟧."),
    ("en", "chat", "Direct deposit form: routing number ⟦bank.us_routing⟧, account "
                   "⟦bank.us_account⟧, checking."),
    ("en", "chat", "Pay into sort code ⟦bank.uk_sort_code⟧, account number ⟦bank.uk_account⟧ "
                   "(⟦=name⟧), ref ⟦~order.po⟧."),
    ("nl", "chat", "Graag overmaken naar ⟦iban.NL⟧ t.n.v. ⟦=name⟧ o.v.v. factuur "
                   "⟦~order.invoice⟧."),
    ("it", "chat", "Coordinate bancarie per il rimborso: ⟦iban.IT⟧ (intestato a ⟦=name⟧)."),
    ("en", "markdown", "| Supplier | IBAN | Amount |\n|---|---|---|\n| ⟦=company⟧ | ⟦iban⟧ | "
                       "⟦~amount⟧ |\n| ⟦=company⟧ | ⟦iban⟧ | ⟦~amount⟧ |\n| ⟦=company⟧ | "
                       "⟦iban.*.compact⟧ | ⟦~amount⟧ |"),
    # --- US SSN and national ids ----------------------------------------------------------------
    ("en", "chat", "For the W-2, my SSN is ⟦ssn⟧ and my spouse's is ⟦ssn⟧."),
    ("en", "chat", "Applicant: ⟦=name⟧, SSN ⟦ssn.compact⟧, ticket ⟦~ticket⟧."),
    ("en", "chat", "My National Insurance number is ⟦nid.uk_nino⟧ and my NHS number is "
                   "⟦nid.gb_nhs⟧."),
    ("fr", "chat", "Numéro de sécurité sociale : ⟦nid.fr_nir⟧. Dossier ⟦~ticket⟧."),
    ("es", "chat", "Mi DNI es ⟦nid.es_dni⟧ y el de mi pareja, que es extranjera, el NIE "
                   "⟦nid.es_nie⟧."),
    ("en-IN", "chat", "Aadhaar: ⟦nid.in_aadhaar⟧, PAN: ⟦nid.in_pan⟧ – please update KYC "
                      "before ⟦~date.eu⟧."),
    ("hi", "chat", "मेरा आधार नंबर ⟦nid.in_aadhaar⟧ है और पैन ⟦nid.in_pan⟧ है।"),
    ("de", "chat", "Meine Steuer-ID lautet ⟦nid.de_steuer_id⟧, bitte in die Lohnabrechnung "
                   "eintragen."),
    ("pt", "chat", "CPF do titular: ⟦nid.br_cpf⟧. NIF em Portugal: ⟦nid.pt_nif⟧."),
    ("en", "chat", "SIN ⟦nid.ca_sin⟧ for the payroll form, start date ⟦~date.iso⟧."),
    ("ja", "chat", "マイナンバーは⟦nid.jp_my_number⟧です。"),
    ("it", "chat", "Codice fiscale: ⟦nid.it_codice_fiscale⟧, nato a Roma."),
    ("nl", "chat", "Mijn BSN is ⟦nid.nl_bsn⟧."),
    ("en", "json", '{"applicant": {"ssn": "⟦ssn⟧", "nino": "⟦nid.uk_nino⟧", "aadhaar": '
                   '"⟦nid.in_aadhaar⟧"}, "submitted": "⟦~date.iso_dt⟧"}'),
    # --- IP addresses ---------------------------------------------------------------------------
    ("en", "log", "⟦~date.iso_dt⟧ WARN auth failed for user=⟦=user⟧ from ⟦ipv4⟧ "
                  "trace_id=⟦~trace.trace_id⟧"),
    ("en", "log", '⟦ipv4⟧ - - [10/Oct/2024:13:55:36 +0000] "GET /api/v1/chat HTTP/1.1" 200 2326 '
                  '"-" "Mozilla/5.0 (Windows NT 10.0; Win64; x64) ⟦~version.ua⟧"'),
    ("en", "chat", "Our VPN gives me ⟦ipv4⟧ but the allowlist has ⟦ipv4.public⟧, why is it "
                   "blocked?"),
    ("en", "log", "X-Forwarded-For: ⟦ipv4⟧, ⟦ipv4.cgnat⟧, ⟦ipv4.private⟧"),
    ("en", "chat", "ping6 ⟦ipv6⟧ fails but ⟦ipv6.compressed⟧ answers, what's wrong with my "
                   "route?"),
    ("en", "config", "server {\n    listen [⟦ipv6⟧]:8443 ssl;\n    allow ⟦ipv6.v4mapped⟧;\n"
                     "    allow ⟦ipv4⟧;\n    deny all;\n}"),
    ("en", "log", "eth0: flags=4163<UP,BROADCAST,RUNNING,MULTICAST>  mtu 1500\n        inet "
                  "⟦ipv4.private⟧  netmask 255.255.255.0\n        inet6 ⟦ipv6.link_local⟧  "
                  "prefixlen 64  scopeid 0x20<link>\n        inet6 ⟦ipv6.full⟧  prefixlen 64\n"
                  "        ether ⟦~mac.colon⟧  txqueuelen 1000"),
    ("de", "chat", "Der Server hat die Adresse ⟦ipv6⟧ und intern ⟦ipv4.private⟧, "
                   "Firmware ⟦~version.four_part⟧."),
    ("ja", "chat", "接続元IPは⟦ipv4⟧と⟦ipv6.nat64⟧でした。"),
    ("en", "chat", "DNS returns ⟦ipv6.trailing⟧ and ⟦ipv6.upper⟧ for the same host, plus "
                   "⟦ipv6.no_zeros⟧."),
    # --- JWT, private keys ----------------------------------------------------------------------
    ("en", "code", "curl -H 'Authorization: Bearer ⟦jwt⟧' https://api.⟦=company⟧.example/v1/me"),
    ("en", "chat", "Why does this token fail? ⟦jwt⟧ It says expired but iat is "
                   "⟦~timestamp.epoch_s⟧."),
    ("en", "json", '{"access_token": "⟦jwt⟧", "token_type": "Bearer", "expires_in": 3600, '
                   '"refresh_token": "⟦auth.session⟧"}'),
    ("fr", "chat", "Le cookie contient session=⟦jwt.HS256⟧ ; est-ce normal qu'il soit lisible ?"),
    ("en", "code", "```\n-----BEGIN RSA PRIVATE KEY-----\n⟦pem.rsa⟧\n"
                   "-----END RSA PRIVATE KEY-----\n"
                   "```\nIs this key format right for paramiko?"),
    ("fr", "chat", "J'ai collé la clé par erreur :\n-----BEGIN OPENSSH PRIVATE KEY-----\n"
                   "⟦pem.openssh⟧\n-----END OPENSSH PRIVATE KEY-----\nComment la révoquer ?"),
    ("en", "code", "key.pem:\n-----BEGIN EC PRIVATE KEY-----\n⟦pem.ec⟧\n"
                   "-----END EC PRIVATE KEY-----"),
    ("en", "json", '{\n  "type": "service_account",\n  "project_id": "⟦=company⟧-prod",\n  '
                   '"private_key_id": "⟦=hex8⟧⟦=hex8⟧⟦=hex8⟧",\n  "private_key": "-----BEGIN '
                   'PRIVATE KEY-----\\n⟦pem.pkcs8|json⟧\\n-----END PRIVATE KEY-----\\n",\n  '
                   '"token_uri": "https://oauth2.googleapis.com/token"\n}'),
    # --- cloud credentials ----------------------------------------------------------------------
    ("en", "config", "[default]\naws_access_key_id = ⟦cloud.aws_access_key_id⟧\n"
                     "aws_secret_access_key = ⟦cloud.aws_secret_access_key⟧\nregion = eu-west-1"),
    ("en", "code", "export AWS_ACCESS_KEY_ID=⟦cloud.aws_access_key_id⟧\nexport "
                   "AWS_SECRET_ACCESS_KEY=⟦cloud.aws_secret_access_key⟧\nexport "
                   "AWS_SESSION_TOKEN=⟦cloud.aws_session_token⟧"),
    ("en", "code", 's3 = boto3.client("s3", aws_access_key_id="⟦cloud.aws_access_key_id⟧",\n'
                   '                  aws_secret_access_key="⟦cloud.aws_secret_access_key⟧")'),
    ("en", "url", "https://maps.googleapis.com/maps/api/geocode/json?address=⟦~postcode⟧"
                  "&key=⟦cloud.gcp_api_key⟧"),
    ("en", "config", "AZURE_STORAGE_CONNECTION_STRING=\"DefaultEndpointsProtocol=https;"
                     "AccountName=⟦=company⟧store;AccountKey=⟦cloud.azure_storage_key⟧;"
                     "EndpointSuffix=core.windows.net\""),
    ("en", "url", "https://⟦=company⟧data.blob.core.windows.net/exports/report.csv?sv=2022-11-02"
                  "&ss=b&srt=o&sp=r&se=2025-01-01T00:00:00Z&spr=https&sig=⟦cloud.azure_sas_signature⟧"),
    ("en", "config", "AZURE_OPENAI_ENDPOINT=https://⟦=company⟧-oai.openai.azure.com/\n"
                     "AZURE_OPENAI_API_KEY=⟦cloud.azure_openai_key⟧\nAZURE_OPENAI_API_VERSION="
                     "⟦~date.iso⟧-preview"),
    ("de", "chat", "Unser Frontend nutzt den Key ⟦cloud.gcp_api_key⟧ – ist das ein Problem, "
                   "wenn er im Browser sichtbar ist?"),
    # --- SaaS tokens ----------------------------------------------------------------------------
    ("en", "config", "OPENAI_API_KEY=⟦token.openai_project⟧\nANTHROPIC_API_KEY=⟦token.anthropic⟧\n"
                     "HF_TOKEN=⟦token.huggingface⟧\nLOG_LEVEL=debug"),
    ("en", "code", "git remote set-url origin https://⟦token.github_classic⟧@github.com/"
                   "⟦=company⟧/infra.git"),
    ("en", "chat", "I accidentally committed ⟦token⟧ to a public repo, how do I rotate it?"),
    ("fr", "chat", "Mon token GitLab ⟦token.gitlab⟧ ne marche plus depuis le ⟦~date.eu⟧."),
    ("es", "chat", "¿Por qué Stripe rechaza mi clave ⟦token.stripe_secret⟧? La restringida "
                   "⟦token.stripe_restricted⟧ sí funciona."),
    ("pt", "chat", "Esse token do Slack ⟦token.slack_bot⟧ ainda está válido?"),
    ("en", "code", 'from openai import OpenAI\nclient = OpenAI(api_key="⟦token.openai_legacy⟧")\n'
                   'resp = client.chat.completions.create(model="gpt-4o-mini", messages=msgs)'),
    ("ja", "chat", "HuggingFaceのトークン⟦token.huggingface⟧でログインできません。"),
    ("en", "config", "//registry.npmjs.org/:_authToken=⟦token.npm⟧\nalways-auth=true"),
    ("en", "config", "[pypi]\n  username = __token__\n  password = ⟦token.pypi⟧"),
    ("en", "code", "curl -X POST -d '{\"text\":\"deploy done\"}' "
                   "https://hooks.slack.com/services/⟦token.slack_webhook⟧"),
    ("en", "log", "Run echo \"⟦token.github_fine_grained⟧\" | gh auth login --with-token\n"
                  "✓ Logged in as ⟦=user⟧"),
    ("en", "chat", "Stripe webhook secret is ⟦token.stripe_webhook⟧ and the SendGrid key "
                   "⟦token.sendgrid⟧, can you wire them into settings.py?"),
    ("en", "config", "DATABRICKS_HOST=https://adb-⟦=n⟧.azuredatabricks.net\nDATABRICKS_TOKEN="
                     "⟦token.databricks⟧"),
    ("en", "chat", "The Slack user token ⟦token.slack_user⟧ and the app token ⟦token.slack_app⟧ "
                   "both return invalid_auth."),
    ("en", "code", "import anthropic\nclient = anthropic.Anthropic(api_key=\"⟦token.anthropic⟧\")"),
    # --- passwords in URLs and connection strings -----------------------------------------------
    ("en", "config", "DATABASE_URL=postgres://⟦=user⟧:⟦password.url⟧@⟦=host⟧:5432/⟦=db⟧"),
    ("en", "config", "MONGO_URI=mongodb+srv://⟦=user⟧:⟦password.url⟧@cluster0.ab1cd.mongodb.net/"
                     "?retryWrites=true&w=majority"),
    ("en", "config", "REDIS_URL=redis://:⟦password.url⟧@cache.internal.example:6379/0\n"
                     "CELERY_BROKER_URL=amqp://⟦=user⟧:⟦password.url⟧@rabbitmq:5672//"),
    ("en", "stack_trace", 'Traceback (most recent call last):\n  File "/app/db.py", line 12, in '
                          '<module>\n    engine = create_engine("postgresql+psycopg2://⟦=user⟧:'
                          '⟦password.url⟧@⟦=host⟧/⟦=db⟧")\nsqlalchemy.exc.OperationalError: '
                          '(psycopg2.OperationalError) connection to server at "⟦=host⟧" '
                          '(⟦ipv4.private⟧), port 5432 failed: FATAL:  password authentication '
                          'failed for user "⟦=user⟧"'),
    ("en", "config", "Server=tcp:⟦=company⟧-sql.database.windows.net,1433;Initial Catalog=⟦=db⟧;"
                     "User ID=⟦=user⟧;Password=⟦password⟧;Encrypt=True;"),
    ("en", "config", "jdbc:mysql://⟦=host⟧:3306/⟦=db⟧?user=⟦=user⟧&password=⟦password.url⟧"
                     "&useSSL=true"),
    ("fr", "chat", "Le mot de passe du compte admin est ⟦password⟧, tu peux le mettre dans "
                   "la doc ?"),
    ("de", "chat", "Das Passwort für die Datenbank ist ⟦password⟧, aber die Verbindung "
                   "schlägt fehl."),
    ("es", "chat", "La contraseña de la base de datos es ⟦password⟧ pero no conecta."),
    ("en", "chat", "my password is ⟦password⟧ and it keeps saying invalid login since "
                   "⟦~date⟧"),
    ("en", "config", "database:\n  host: ⟦=host⟧\n  user: ⟦=user⟧\n  password: \"⟦password⟧\"\n"
                     "  pool: ⟦=n⟧"),
    ("en", "code", "pip install --index-url https://⟦=user⟧:⟦password.url⟧@pypi.⟦=company⟧.example"
                   "/simple/ internal-sdk==⟦~version.semver⟧"),
    # --- auth headers ---------------------------------------------------------------------------
    ("en", "log", "POST /v1/chat/completions HTTP/1.1\nHost: api.⟦=company⟧.example\n"
                  "Authorization: Bearer ⟦auth.bearer⟧\nContent-Type: application/json\n"
                  "X-Request-ID: ⟦~uuid⟧"),
    ("en", "log", "GET /admin HTTP/1.1\nAuthorization: Basic ⟦auth.basic⟧\nUser-Agent: "
                  "curl/8.5.0"),
    ("en", "chat", "The docs say to send `Bearer: ⟦auth.bearer⟧` but I get 401, what's the right "
                   "header?"),
    ("en", "code", "curl https://api.⟦=company⟧.example/v2/items -H \"X-API-Key: ⟦auth.api_key⟧\""),
    ("en", "url", "GET /oauth/callback?code=⟦=hex8⟧&access_token=⟦auth.bearer⟧&state=⟦=hex8⟧"),
    ("en", "log", "Set-Cookie: sessionid=⟦auth.session⟧; HttpOnly; Secure; Path=/"),
    ("es", "chat", "Estoy usando el header Authorization: Basic ⟦auth.basic⟧ pero el servidor "
                   "responde 403."),
    # --- mixed documents ------------------------------------------------------------------------
    ("fr", "email_headers", "From: ⟦=name⟧ <⟦email⟧>\nTo: ⟦email⟧\nCc: ⟦email.plus⟧\n"
                            "Date: Tue, 12 Mar 2024 09:14:22 +0100\nSubject: Re: facture "
                            "⟦~order.invoice⟧\nX-Originating-IP: [⟦ipv4⟧]\n\nBonjour, ci-joint "
                            "la facture. Tél. : ⟦phone.FR⟧"),
    ("en", "csv", "id,name,email,phone,signup\n1,⟦=name⟧,⟦email⟧,⟦phone⟧,⟦~date.iso⟧\n"
                  "2,⟦=name⟧,⟦email⟧,⟦phone⟧,⟦~date.iso⟧\n3,⟦=name⟧,⟦email.plus⟧,⟦phone⟧,"
                  "⟦~date.iso⟧"),
    ("en", "stack_trace", 'Traceback (most recent call last):\n  File "/app/mailer.py", line 88, '
                          'in send\n    smtp.login("⟦email⟧", "⟦password⟧")\n  File '
                          '"/usr/lib/python3.11/smtplib.py", line 750, in login\n    raise '
                          'last_exception\nsmtplib.SMTPAuthenticationError: (535, b\'5.7.8 '
                          'Username and Password not accepted\')'),
    ("en", "json", '{"name": "create_customer", "arguments": {"email": "⟦email⟧", "phone": '
                   '"⟦phone.*.e164⟧", "iban": "⟦iban.*.compact⟧", "note": "order ⟦~order⟧"}}'),
    ("en", "log", '{"ts":"⟦~date.iso_dt⟧","level":"info","msg":"login ok","user":"⟦email⟧",'
                  '"ip":"⟦ipv4⟧","trace_id":"⟦~trace.trace_id⟧","duration_ms":⟦=n⟧}'),
    ("de", "markdown", "## Kundendaten\n\n- **Name:** ⟦=name⟧\n- **E-Mail:** ⟦email⟧\n- "
                       "**Telefon:** ⟦phone.DE.national⟧\n- **IBAN:** ⟦iban.DE⟧\n- "
                       "**Steuer-ID:** ⟦nid.de_steuer_id⟧"),
    ("en-IN", "chat", "Sir, my details: mobile ⟦phone.IN⟧, mail ⟦email⟧, PAN ⟦nid.in_pan⟧, "
                      "account ⟦bank.us_account⟧. Pls process refund of ⟦~amount⟧."),
    ("en", "code", "```python\nDB = \"postgresql://⟦=user⟧:⟦password.url⟧@⟦ipv4.private⟧:5432/"
                   "⟦=db⟧\"\nSTRIPE_KEY = \"⟦token.stripe_secret⟧\"\nADMIN_EMAIL = "
                   "\"⟦email⟧\"\n```"),
    ("es", "csv", "nombre;dni;teléfono;iban\n⟦=name⟧;⟦nid.es_dni⟧;⟦phone.ES⟧;⟦iban.ES⟧\n"
                  "⟦=name⟧;⟦nid.es_nie⟧;⟦phone.ES⟧;⟦iban.ES⟧"),
    # --- hard negatives only --------------------------------------------------------------------
    ("en", "markdown", "## ⟦~version.semver⟧ (⟦~date.iso⟧)\n- Fixed a crash on Windows "
                       "⟦~version.windows⟧\n- Bumped ⟦~pkgref⟧\n- Commit ⟦~hash.git_short⟧, "
                       "see ⟦~ticket⟧"),
    ("en", "log", "⟦~date.iso_dt⟧ INFO request_id=⟦~uuid⟧ trace_id=⟦~trace.trace_id⟧ "
                  "span_id=⟦~trace.span_id⟧ took ⟦=n⟧ms"),
    ("en", "log", "event_time_us=⟦~timestamp.epoch_us_luhn⟧ seq=⟦~order.digits16⟧ "
                  "batch=⟦~timestamp.epoch_us_luhn⟧"),
    ("en", "chat", "Compute ⟦~math⟧ and then check whether ⟦~math⟧ holds."),
    ("en", "chat", "Your order ⟦~order.amazon⟧ shipped on ⟦~date.long⟧; tracking "
                   "⟦~tracking⟧, delivery to postcode ⟦~postcode⟧."),
    ("en", "chat", "Recommended reading: ISBN ⟦~isbn⟧ and ⟦~isbn⟧ (see also doi:⟦~doi⟧)."),
    ("en", "log", "switch-01 port 12 mac ⟦~mac⟧ vlan 20; snmpget ⟦~oid⟧ ok"),
    ("en", "chat", "The trailhead is at ⟦~gps⟧, about ⟦=n⟧ km from the station."),
    ("en", "chat", "Restock ⟦~product⟧ and ⟦~product⟧ before ⟦~date⟧."),
    ("en", "code", 'client = OpenAI(api_key="⟦~placeholder⟧")  # replace with your key\n'
                   "export GITHUB_TOKEN=⟦~placeholder⟧"),
    ("en", "config", "image: registry.example.com/app@⟦~hash.docker_digest⟧\n"
                     "# built from ⟦~hash.git⟧ at ⟦~timestamp.iso⟧"),
    ("fr", "chat", "La version ⟦~version.four_part⟧ du firmware est sortie le ⟦~date.eu⟧ à "
                   "⟦~time⟧."),
    ("de", "chat", "Build ⟦~version.semver⟧ vom ⟦~date.dotted⟧, Ticket ⟦~ticket⟧, Kosten "
                   "⟦~amount⟧."),
    ("ja", "chat", "注文番号⟦~order.digits12⟧、お届け予定は⟦~date.ja⟧です。郵便番号⟦~postcode⟧"),
    ("es", "chat", "El pedido ⟦~order⟧ de ⟦~amount⟧ llegará el ⟦~date.long⟧."),
    ("hi", "chat", "ऑर्डर ⟦~order⟧ की डिलीवरी ⟦~date.eu⟧ को होगी, ट्रैकिंग ⟦~tracking⟧।"),
    ("pt", "chat", "Versão ⟦~version.prerelease⟧ publicada; hash ⟦~hash.sha256⟧."),
    ("en", "csv", "ts,trace_id,latency_ms\n⟦~timestamp.epoch_ms⟧,⟦~trace.trace_id⟧,⟦=n⟧\n"
                  "⟦~timestamp.epoch_ms⟧,⟦~trace.trace_id⟧,⟦=n⟧"),
    ("en", "json", '{"startTimeUnixNano":"⟦~timestamp.epoch_ns⟧","traceId":"⟦~trace.trace_id⟧",'
                   '"spanId":"⟦~trace.span_id⟧","traceparent":"⟦~trace.traceparent⟧"}'),
    ("en", "chat", "Squares: ⟦~math⟧. Also ⟦~math⟧."),
    ("it", "chat", "Il pacco ⟦~tracking⟧ con ⟦~product⟧ arriva il ⟦~date.eu⟧."),
    ("en", "code", "npm install ⟦~pkgref⟧\ngit clone ⟦~pkgref⟧\n# checksum ⟦~hash.md5⟧"),
    ("en", "chat", "Device ⟦~mac.cisco⟧ and ⟦~mac.dash⟧ dropped off the network at ⟦~time⟧."),
    ("en", "chat", "Landmarks: ⟦~gps⟧ (north gate) and ⟦~gps⟧ (south gate)."),
    ("en", "log", "job=⟦~uuid⟧ parent=⟦~uuid⟧ oid=⟦~oid⟧ at ⟦~time⟧"),
    ("en", "markdown", "References: [1] doi:⟦~doi⟧ [2] doi:⟦~doi⟧ [3] ISBN ⟦~isbn⟧"),
    ("fr", "chat", "Coordonnées du point de rendez-vous : ⟦~gps⟧, code postal ⟦~postcode⟧."),
]


HELDOUT: list[Template] = [
    # --- e-mail ---------------------------------------------------------------------------------
    ("en", "chat", "Forward the logs to ⟦email⟧ — not to ⟦email.sub⟧, he left the company."),
    ("fr", "chat", "Écrivez-moi plutôt sur ⟦email.idn⟧ ; l'adresse ⟦email.plus⟧ est réservée "
                   "aux newsletters."),
    ("de", "chat", "Bitte antworten Sie an ⟦email.obf⟧ (Spamschutz)."),
    ("es", "chat", "Mi correo personal: ⟦email.eai⟧. El del trabajo: ⟦email⟧."),
    ("ja", "chat", "請求書は⟦email.idn⟧宛てに送ってください。"),
    ("en-IN", "chat", "Please do send the offer letter on my personal mail id ⟦email⟧ only."),
    ("pt", "chat", "Pode cadastrar ⟦email.upper⟧ como contato de cobrança?"),
    ("en", "html", "<form><input type=\"email\" name=\"email\" value=\"⟦email⟧\"><input "
                   "name=\"backup\" value=\"⟦email.quoted⟧\"></form>"),
    # --- phone ----------------------------------------------------------------------------------
    ("en", "chat", "Text me at ⟦phone.CA⟧ when you land; the hotel is ⟦phone.US.national⟧."),
    ("fr", "chat", "Mon numéro a changé : c'est désormais le ⟦phone.FR.dots⟧ (ancien : "
                   "⟦phone.BE⟧)."),
    ("de", "chat", "Erreichbar unter ⟦phone.DE.intl⟧, in der Schweiz unter ⟦phone.CH⟧."),
    ("es", "chat", "Llámame al ⟦phone.AR⟧ o al ⟦phone.ES.intl00⟧."),
    ("ja", "chat", "連絡先：⟦phone.JP⟧（携帯）"),
    ("hi", "chat", "मेरा मोबाइल नंबर ⟦phone.IN⟧ है, कृपया इसी पर कॉल करें।"),
    ("pt", "chat", "Celular: ⟦phone.BR.national⟧ — WhatsApp ⟦phone.BR.e164⟧"),
    ("en", "yaml", "contacts:\n  - name: ⟦=name⟧\n    phone: \"⟦phone⟧\"\n  - name: ⟦=name⟧\n"
                   "    phone: \"⟦phone⟧\"\n  - name: ⟦=name⟧\n    phone: \"⟦phone.*.rfc3966⟧\""),
    ("en", "chat", "Customer called from ⟦phone.GB.national⟧ and then from ⟦phone.IE⟧; "
                   "reference ⟦~ticket⟧."),
    ("en", "sql", "INSERT INTO contacts (name, phone, country) VALUES ('⟦=name⟧', '⟦phone.PL⟧', "
                  "'PL'), ('⟦=name⟧', '⟦phone.SE.national⟧', 'SE'), ('⟦=name⟧', '⟦phone.KR⟧', "
                  "'KR');"),
    # --- cards ----------------------------------------------------------------------------------
    ("en", "chat", "Can you check if ⟦card⟧ is a valid Visa? It got declined at checkout."),
    ("fr", "chat", "J'ai payé ⟦~amount⟧ avec la carte ⟦card⟧ le ⟦~date.eu⟧, remboursez-moi."),
    ("de", "chat", "Kartennummer ⟦card⟧, gültig bis 11/28 — Bestellung ⟦~order.amazon⟧."),
    ("es", "chat", "Mi tarjeta terminada en otra cifra no es ⟦card⟧, revisen el cargo."),
    ("pt", "chat", "Cartão ⟦card⟧ recusado na compra ⟦~order.digits16⟧."),
    ("en", "log", "payment.declined card=⟦card.*.none⟧ amount_cents=⟦=n⟧00 "
                  "ts=⟦~timestamp.epoch_us_luhn⟧"),
    ("ja", "chat", "カード⟦card⟧の請求が二重になっています。"),
    # --- bank -----------------------------------------------------------------------------------
    ("en", "chat", "Please refund to my account: ⟦iban.GB⟧."),
    ("de", "chat", "Meine Bankverbindung hat sich geändert: ⟦iban.AT⟧ (vorher ⟦iban.CH⟧)."),
    ("fr", "chat", "Les loyers vont sur le compte ⟦iban.LU⟧ ou ⟦iban.BE⟧."),
    ("pt", "chat", "Dados para depósito: IBAN ⟦iban.PT⟧; no Brasil, ⟦iban.BR⟧."),
    ("en", "chat", "ACH details — ABA ⟦bank.us_routing⟧, acct ⟦bank.us_account⟧."),
    ("en", "chat", "Sort code ⟦bank.uk_sort_code⟧ / account ⟦bank.uk_account⟧ is the one for "
                   "the rent."),
    ("en", "yaml", "payout:\n  iban: ⟦iban.*.compact⟧\n  holder: ⟦=name⟧\n  backup_iban: "
                   "⟦iban.PL⟧"),
    ("sv", "chat", "Betala till ⟦iban.SE⟧ eller ⟦iban.NO⟧, tack."),
    # --- SSN and national ids -------------------------------------------------------------------
    ("en", "chat", "Background check for ⟦=name⟧, social security number ⟦ssn⟧."),
    ("en", "sql", "SELECT * FROM employees WHERE ssn = '⟦ssn⟧' OR ssn = '⟦ssn.spaces⟧';"),
    ("en", "chat", "NI number ⟦nid.uk_nino⟧, NHS no. ⟦nid.gb_nhs⟧, please update my record."),
    ("fr", "chat", "Voici mon numéro INSEE ⟦nid.fr_nir⟧ pour la mutuelle."),
    ("es", "chat", "Adjunto NIE ⟦nid.es_nie⟧ y DNI ⟦nid.es_dni⟧ para el contrato."),
    ("en-IN", "chat", "My Aadhaar is ⟦nid.in_aadhaar⟧ and PAN card no is ⟦nid.in_pan⟧, "
                      "plz link them."),
    ("de", "chat", "Steueridentifikationsnummer: ⟦nid.de_steuer_id⟧"),
    ("pt", "chat", "Segue o CPF ⟦nid.br_cpf⟧ para emissão da nota."),
    ("en", "chat", "Canadian SIN: ⟦nid.ca_sin⟧"),
    ("ja", "chat", "個人番号（マイナンバー）：⟦nid.jp_my_number⟧"),
    ("it", "chat", "Il mio codice fiscale è ⟦nid.it_codice_fiscale⟧."),
    ("nl", "chat", "Burgerservicenummer ⟦nid.nl_bsn⟧ graag invullen."),
    ("pt", "chat", "Número de contribuinte ⟦nid.pt_nif⟧."),
    ("en", "xml", "<employee><name>⟦=name⟧</name><nino>⟦nid.uk_nino⟧</nino><nhs>⟦nid.gb_nhs⟧"
                  "</nhs><ssn>⟦ssn⟧</ssn></employee>"),
    # --- IP -------------------------------------------------------------------------------------
    ("en", "log", "Oct 11 22:14:15 bastion sshd[4121]: Failed password for invalid user "
                  "⟦=user⟧ from ⟦ipv4⟧ port 51422 ssh2"),
    ("en", "log", "Oct 11 22:14:18 bastion sshd[4125]: Accepted publickey for ops from "
                  "⟦ipv6⟧ port 60022 ssh2"),
    ("en", "chat", "Whitelist ⟦ipv4.public⟧ and ⟦ipv4.doc⟧ in the firewall, thanks."),
    ("fr", "chat", "Le client se connecte depuis ⟦ipv4⟧ puis ⟦ipv6.v4mapped⟧."),
    ("en", "yaml", "peers:\n  - ⟦ipv6.ula⟧\n  - ⟦ipv6.full⟧\n  - ⟦ipv4.private⟧"),
    ("es", "chat", "La IP del servidor es ⟦ipv6.compressed⟧, la de respaldo ⟦ipv4⟧."),
    ("en", "url", "http://[⟦ipv6⟧]:8080/healthz and http://⟦ipv4⟧:9090/metrics"),
    ("en", "chat", "Why does ⟦ipv6.link_local⟧%en0 show up next to ⟦ipv6.trailing⟧?"),
    # --- JWT, keys ------------------------------------------------------------------------------
    ("en", "chat", "Decode this for me: ⟦jwt⟧"),
    ("en", "code", "fetch(url, { headers: { Authorization: `Bearer ⟦jwt⟧` } })"),
    ("de", "chat", "Im localStorage steht id_token=⟦jwt.RS256⟧, ist das sicher?"),
    ("en", "code", "ssh_key = \"\"\"-----BEGIN OPENSSH PRIVATE KEY-----\n⟦pem.openssh⟧\n"
                   "-----END OPENSSH PRIVATE KEY-----\"\"\""),
    ("en", "chat", "Here is my private key, why does openssl reject it?\n"
                   "-----BEGIN PRIVATE KEY-----\n"
                   "⟦pem.pkcs8⟧\n-----END PRIVATE KEY-----"),
    ("es", "chat", "Clave del servidor:\n-----BEGIN RSA PRIVATE KEY-----\n⟦pem.rsa⟧\n"
                   "-----END RSA PRIVATE KEY-----"),
    ("en", "yaml", "tls:\n  key: |\n    -----BEGIN EC PRIVATE KEY-----\n    ⟦pem.ec⟧\n"
                   "    -----END EC PRIVATE KEY-----"),
    ("en", "json", '{"type":"service_account","client_id":"⟦=n⟧⟦=n⟧⟦=n⟧","private_key":"-----'
                   'BEGIN PRIVATE KEY-----\\n⟦pem.pkcs8|json⟧\\n-----END PRIVATE KEY-----\\n"}'),
    # --- cloud ----------------------------------------------------------------------------------
    ("en", "yaml", "env:\n  - name: AWS_ACCESS_KEY_ID\n    value: ⟦cloud.aws_access_key_id⟧\n"
                   "  - name: AWS_SECRET_ACCESS_KEY\n    value: ⟦cloud.aws_secret_access_key⟧"),
    ("en", "code", "provider \"aws\" {\n  access_key = \"⟦cloud.aws_access_key_id⟧\"\n  "
                   "secret_key = \"⟦cloud.aws_secret_access_key⟧\"\n}"),
    ("fr", "chat", "La clé AWS ⟦cloud.aws_access_key_id⟧ avec le secret "
                   "⟦cloud.aws_secret_access_key⟧ a fuité, que faire ?"),
    ("en", "code", "const map = new google.maps.Map(el); // key=⟦cloud.gcp_api_key⟧"),
    ("en", "chat", "Our storage account key is ⟦cloud.azure_storage_key⟧ — rotate it?"),
    ("en", "code", "az storage blob upload --account-name ⟦=company⟧ --sas-token "
                   "\"sv=2023-01-03&sp=rw&sig=⟦cloud.azure_sas_signature⟧\""),
    ("en", "code", "headers = {\"api-key\": \"⟦cloud.azure_openai_key⟧\"}"),
    ("ja", "chat", "AWSのアクセスキー⟦cloud.aws_access_key_id⟧を無効化してください。"),
    # --- tokens ---------------------------------------------------------------------------------
    ("en", "chat", "gh says bad credentials for ⟦token.github_oauth⟧, is it expired?"),
    ("en", "yaml", "steps:\n  - run: docker login ghcr.io -u ⟦=user⟧ -p ⟦token.github_classic⟧\n"
                   "  - run: npm config set //registry.npmjs.org/:_authToken ⟦token.npm⟧"),
    ("de", "chat", "Unser GitLab-Token ⟦token.gitlab⟧ steht leider im Wiki."),
    ("en", "code", "const anthropic = new Anthropic({ apiKey: '⟦token.anthropic⟧' });"),
    ("es", "chat", "Mi clave de OpenAI ⟦token.openai_project⟧ aparece en los logs."),
    ("pt", "chat", "O token do Hugging Face ⟦token.huggingface⟧ foi exposto no notebook."),
    ("en", "code", "stripe.api_key = \"⟦token.stripe_secret⟧\"\nendpoint_secret = "
                   "\"⟦token.stripe_webhook⟧\""),
    ("en", "chat", "Is ⟦token.github_fine_grained⟧ a fine-grained token or a classic one?"),
    ("fr", "chat", "Le bot Slack utilise ⟦token.slack_bot⟧ et le webhook "
                   "https://hooks.slack.com/services/⟦token.slack_webhook⟧."),
    ("en", "code", "twine upload -u __token__ -p ⟦token.pypi⟧ dist/*"),
    ("en", "chat", "openai.api_key = ⟦token.openai_service⟧ — is a service account key "
                   "safe to share with the contractor?"),
    ("en", "chat", "Here's everything: ⟦token⟧ and ⟦token⟧."),
    # --- passwords ------------------------------------------------------------------------------
    ("en", "code", "psql \"postgresql://⟦=user⟧:⟦password.url⟧@⟦=host⟧/⟦=db⟧?sslmode=require\""),
    ("en", "yaml", "spring:\n  datasource:\n    url: jdbc:postgresql://⟦=host⟧:5432/⟦=db⟧\n"
                   "    username: ⟦=user⟧\n    password: '⟦password⟧'"),
    ("en", "stack_trace", "org.postgresql.util.PSQLException: FATAL: password authentication "
                          "failed for user \"⟦=user⟧\"\n\tat org.postgresql.core.v3."
                          "ConnectionFactoryImpl.doAuthentication(ConnectionFactoryImpl.java:693)\n"
                          "\tat com.example.Db.connect(Db.java:41)\nurl=jdbc:postgresql://"
                          "⟦=host⟧:5432/⟦=db⟧?user=⟦=user⟧&password=⟦password.url⟧"),
    ("en", "config", "mongodb://⟦=user⟧:⟦password.url⟧@mongo-0.example:27017,mongo-1.example:27017/"
                     "⟦=db⟧?replicaSet=rs0"),
    ("en", "config", "rediss://default:⟦password.url⟧@⟦=company⟧-cache.example.net:6380"),
    ("de", "chat", "Mein WLAN-Passwort lautet ⟦password⟧, kannst du es dem Gast schicken?"),
    ("pt", "chat", "A senha do servidor é ⟦password⟧, anota aí."),
    ("ja", "chat", "パスワードは⟦password⟧です。忘れないでください。"),
    ("en", "code", "curl -u ⟦=user⟧:⟦password⟧ https://jenkins.⟦=company⟧.example/job/build"),
    ("en", "config", "ODBC: DRIVER={ODBC Driver 18 for SQL Server};SERVER=⟦=host⟧;UID=⟦=user⟧;"
                     "PWD=⟦password⟧"),
    ("it", "chat", "La password di root è ⟦password⟧, cambiala dopo il deploy."),
    # --- auth headers ---------------------------------------------------------------------------
    ("en", "code", "requests.get(url, headers={\"Authorization\": \"Bearer ⟦auth.bearer⟧\"})"),
    ("en", "json", '{"request":{"method":"GET","headers":[{"name":"Authorization","value":'
                   '"Basic ⟦auth.basic⟧"},{"name":"Cookie","value":"sid=⟦auth.session⟧"}]}}'),
    ("en", "log", "DEBUG http.client send: b'GET /v1/models HTTP/1.1\\r\\nAuthorization: Bearer "
                  "⟦auth.bearer⟧\\r\\n'"),
    ("fr", "chat", "J'envoie Bearer: ⟦auth.bearer⟧ dans l'en-tête mais ça échoue."),
    ("en", "code", "wget --header='X-API-Key: ⟦auth.api_key⟧' https://data.example.org/export"),
    ("en", "chat", "Proxy-Authorization: Basic ⟦auth.basic⟧ — why does squid reject it?"),
    # --- mixed documents ------------------------------------------------------------------------
    ("en", "email_headers", "Return-Path: <⟦email⟧>\nReceived: from mail.example.org "
                            "(⟦ipv4⟧) by mx.example.net\nFrom: \"⟦=name⟧\" <⟦email⟧>\nTo: "
                            "⟦email.idn⟧\nSubject: my new number\n\nHi, new mobile: "
                            "⟦phone.GB⟧. Cheers"),
    ("pt", "csv", "nome,cpf,email,celular\n⟦=name⟧,⟦nid.br_cpf⟧,⟦email⟧,⟦phone.BR⟧\n⟦=name⟧,"
                  "⟦nid.br_cpf⟧,⟦email⟧,⟦phone.BR⟧"),
    ("en", "sql", "UPDATE users SET email = '⟦email⟧', card = '⟦card⟧', last_ip = '⟦ipv4⟧' "
                  "WHERE id = ⟦=n⟧;"),
    ("en", "json", '{"tool":"send_sms","args":"{\\"to\\": \\"⟦phone.*.e164⟧\\", \\"body\\": '
                   '\\"code ⟦=n⟧\\"}"}'),
    ("fr", "markdown", "### Fiche client\n\n| Champ | Valeur |\n|---|---|\n| Courriel | "
                       "⟦email⟧ |\n| Téléphone | ⟦phone.FR⟧ |\n| IBAN | ⟦iban.FR⟧ |\n| NIR | "
                       "⟦nid.fr_nir⟧ |"),
    ("en", "stack_trace", "Error: connect ECONNREFUSED ⟦ipv4.private⟧:5432\n    at "
                          "TCPConnectWrap.afterConnect [as oncomplete] (node:net:1555:16)\n  "
                          "config: { connectionString: 'postgres://⟦=user⟧:⟦password.url⟧@"
                          "⟦ipv4.private⟧:5432/⟦=db⟧' }"),
    ("hi", "chat", "नाम: ⟦=name⟧, ईमेल: ⟦email⟧, फ़ोन: ⟦phone.IN⟧, आधार: ⟦nid.in_aadhaar⟧"),
    ("en", "log", "level=error msg=\"webhook failed\" url=https://hooks.slack.com/services/"
                  "⟦token.slack_webhook⟧ client_ip=⟦ipv4⟧ user=⟦email⟧"),
    # --- hard negatives only --------------------------------------------------------------------
    ("en", "chat", "Upgrade from ⟦~version⟧ to ⟦~version.prerelease⟧ before ⟦~date.long⟧."),
    ("en", "log", "level=info ts=⟦~timestamp.iso⟧ traceparent=⟦~trace.traceparent⟧ "
                  "job=⟦~uuid⟧"),
    ("en", "json", '{"created_us": ⟦~timestamp.epoch_us_luhn⟧, "updated_ms": '
                   '⟦~timestamp.epoch_ms⟧, "order": "⟦~order.digits16⟧"}'),
    ("en", "chat", "What is ⟦~math⟧? And ⟦~math⟧?"),
    ("de", "chat", "Lieferung ⟦~order.amazon⟧ kommt am ⟦~date.long⟧ an die PLZ ⟦~postcode⟧; "
                   "Sendungsnummer ⟦~tracking⟧."),
    ("fr", "chat", "Le livre ISBN ⟦~isbn⟧ coûte ⟦~amount⟧."),
    ("en", "yaml", "devices:\n  - mac: \"⟦~mac⟧\"\n  - mac: \"⟦~mac.dash⟧\"\nsnmp_oid: ⟦~oid⟧"),
    ("es", "chat", "Nos vemos en ⟦~gps⟧ a las ⟦~time⟧."),
    ("en", "csv", "sku,ean,qty\n⟦~product⟧,⟦~product⟧,⟦=n⟧\n⟦~product⟧,⟦~product⟧,⟦=n⟧"),
    ("en", "markdown", "Set `OPENAI_API_KEY=⟦~placeholder⟧` and `HF_TOKEN=⟦~placeholder⟧` in "
                       "your `.env`, never the real values."),
    ("en", "code", "FROM python@⟦~hash.docker_digest⟧\nLABEL git_sha=⟦~hash.git⟧"),
    ("ja", "chat", "バージョン⟦~version.semver⟧は⟦~date.ja⟧にリリースされました。"),
    ("pt", "chat", "O pedido ⟦~order.po⟧ foi pago: ⟦~amount⟧ em ⟦~date.long⟧."),
    ("hi", "chat", "संस्करण ⟦~version⟧ ⟦~date.iso⟧ को जारी हुआ।"),
    ("en", "log", "ts_ns=⟦~timestamp.epoch_ns⟧ span=⟦~trace.span_id⟧ sha=⟦~hash.git_short⟧"),
    ("it", "chat", "Riferimento ⟦~doi⟧, ticket ⟦~ticket⟧, build ⟦~version.windows⟧."),
    ("en", "code", "@dataclass\nclass Order:\n    id: str = \"⟦~order.digits16⟧\"  # not a card\n"
                   "    created: str = \"⟦~date.iso_dt⟧\""),
    ("en", "chat", "The access point ⟦~mac.colon⟧ reports firmware ⟦~version.four_part⟧."),
    ("de", "chat", "Rechnung ⟦~order.invoice⟧ über ⟦~amount⟧, fällig am ⟦~date.dotted⟧."),
    ("en", "chat", "Sequence: ⟦~math⟧; timestamp ⟦~timestamp.epoch_us_luhn⟧ in µs."),
    ("de", "chat", "Treffpunkt: ⟦~gps⟧, Referenz ⟦~uuid⟧."),
    ("en", "json", '{"id":"⟦~uuid⟧","doi":"⟦~doi⟧","isbn":"⟦~isbn⟧","oid":"⟦~oid⟧"}'),
    ("ja", "chat", "座標は⟦~gps⟧、郵便番号は⟦~postcode⟧です。"),
    ("en", "chat", "Shifts at ⟦~time⟧, ⟦~time⟧ and ⟦~time⟧ on ⟦~date⟧; parcel ⟦~tracking⟧."),
    ("en", "markdown", "Add ⟦~pkgref⟧ to the dependencies, then clone ⟦~pkgref⟧ for the charts."),
]
