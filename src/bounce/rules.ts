/**
 * Bounce classification rules, as data (format of ZoneMTA's config/bounces.txt):
 *
 *   regex,category,reason
 *
 * - `regex` is matched case-insensitively against the diagnostic text (an SMTP reply or the
 *   error paragraph of a bounce), whitespace collapsed to single spaces. It may contain commas:
 *   the line is split on its last two commas.
 * - `category` is `hard` (the address itself is bad) or `soft`; a 4xx reply is always soft.
 * - `reason` is a Sisimai reason name.
 * - Every rule is preceded by one or more `> sample` lines: replies that the rule must classify
 *   (test/unit/bounce/rules.test.ts asserts each one against the whole rule list, so order counts).
 * - Rules are tried top to bottom; the first match wins. Lines starting with `#` are comments.
 *
 * Phrases follow the reason taxonomy and message catalogue of Sisimai (BSD 2-Clause,
 * azumakuniyuki and the sisimai development team).
 */
export const RULES_TEXT = String.raw`

# --- mailbox full ------------------------------------------------------------------------------------
> 452 4.2.2 <kijitora@example.jp>... Mailbox full
> 550 5.2.2 The email account that you tried to reach is over quota.
> 552 5.2.2 Quota exceeded (mailbox for user is full)
mailbox (?:is )?full|mailbox size limit exceeded|over ?quota|quota (?:exceeded|violation|limit)|exceeded (?:his|her|the|their)? ?(?:storage|quota|allocation)|exceeded storage allocation|disk quota|insufficient (?:disk )?space|not enough (?:disk )?space|no space left|user has too many messages|mailfolder is full|mailbox exceeds allowed size|mailbox would exceed|full mailbox|boite du destinataire pleine|user's space has been used up|too much mail data|account is (?:over|out of) (?:its )?quota|is full|exceeds? (?:the )?(?:user'?s )?(?:mailbox )?(?:quota|size limit|storage)|mailbox (?:has )?exceeded|maildir (?:over )?quota|quota full|storage limit|exceeding receiving limits|not sufficient disk space|(?:mailbox|maildir|disk|over|account is) [^.;]{0,40}quota|quota [^.;]{0,30}exceeded|mailbox [^.;]{0,30}exceeded [^.;]{0,30}limit|enough [^.;]{0,20}space,soft,mailboxfull

# --- message too big ---------------------------------------------------------------------------------
> 552 5.3.4 Message size exceeds fixed maximum message size
message (?:size )?exceeds (?:fixed |the )?(?:maximum|size limit)|message (?:is )?too (?:big|large)|size exceeds fixed maximum|size limit exceeded|message size exceeds|exceeds? (?:the )?(?:maximum|max) (?:allowed )?(?:message )?size|message length exceeds|mail size limit|email too large|larger than (?:the )?(?:maximum|allowed)|message file too big|size of (?:the )?message exceeds,soft,mesgtoobig

# --- suspended / disabled accounts -------------------------------------------------------------------
> 550 5.2.1 The email account that you tried to reach is disabled.
> 550 5.7.13 User account is suspended
account (?:that you tried to reach )?(?:is |has been )?(?:disabled|suspended|deactivated|inactive|locked|frozen|discontinued|terminated|expired)|(?:is|has been|currently) suspended|mailbox (?:is )?(?:disabled|frozen|currently suspended|inactive)|inactive (?:account|user|mailbox)|invalid/inactive user|user suspended|archived recipient|temporarily inactive|temporary locked|recipient suspend|account is locked|user (?:account )?(?:is )?(?:disabled|inactive)|boite du destinataire archivee|this address no longer accepts mail|user or domain is disabled|is a deactivated mailbox|(?:recipient )?account is blocked|compte du destinataire est bloque|mailbox (?:temporarily )?unavailable or access denied|user is terminated|this mailbox is disabled|account has been (?:disabled|temporarily suspended)|temporarily inactive,soft,suspend

# --- moved ----------------------------------------------------------------------------------------------
> 550 5.1.6 Recipient addresses rejected : user has moved
(?:has|have) moved|no longer (?:at|with) |address (?:has )?changed|owner has changed|moved (?:permanently|to)|no forwarding address,hard,hasmoved

# --- relaying denied ------------------------------------------------------------------------------------
> 554 5.7.1 <kijitora@example.net>: Relay access denied
> 550 Insecure Mail Relay
relay(?:ing)? (?:access )?(?:denied|not permitted|prohibited|not allowed)|insecure mail relay|not permitted to relay|unable to relay|we do not relay|relay not permitted|relaying mail to .* is not allowed|that domain isn'?t in my list of allowed rcpthosts|not (?:a )?(?:local|allowed) (?:domain|rcpthost),soft,norelaying

# --- SPF / DKIM / DMARC ---------------------------------------------------------------------------------
> 550 5.7.509 Access denied, sending domain example.com does not pass DMARC verification
> 550 5.7.26 This mail is unauthenticated, which poses a security risk to the sender and Gmail users
> 550 5.1.0 192.0.2.222 is not allowed to send from <example.net> per it's SPF Record.
\bspf\b|\bdkim\b|\bdmarc\b|sender policy framework|unauthenticated email|this mail is unauthenticated|domainkeys|authentication (?:results|checks) (?:failed|did not pass)|not authorized to send on behalf|not designated by|is not allowed to send from .* per it'?s spf,soft,authfailure

# --- sender authentication required ------------------------------------------------------------------
> 550 Unauthenticated senders not allowed
> 530 5.7.0 Authentication required
unauthenticated senders? not allowed|authentication (?:is )?required|must (?:be )?authenticated?|relay requires authentication,soft,securityerror

# --- envelope sender rejected -----------------------------------------------------------------------------
> 550 5.1.7 <shironeko@example.org>: Sender address rejected: Domain not found
> 553 5.1.8 <shironeko@example.org>... Domain of sender address example.org does not exist
> 550 5.7.1 Sender verify failed
sender (?:address )?(?:rejected|refused|verify failed|not pre-approved|was rejected|domain (?:is empty|must resolve|not found)|is (?:in my black list|spammer|invalid|not allowed))|domain of sender address|invalid sender|bogus mail from|empty envelope senders? not allowed|null sender is not allowed|mail from not owned by user|sender email address rejected|unroutable sender address|returned mail not accepted here|sender address has been blacklisted|your email address has been blacklisted|no third-party dsns|batv|fully qualified email address required|from: domain is invalid|you are not allowed to post to this mailing list|(?:not have|need) permission to post|address .* is on senderfilterconfig list|email address is not verified|sender not (?:allowed|authorized|permitted)|envelope blocked|this server does not accept mail from|sender (?:address )?blacklisted|rejected: (?:sender|mail from)|access denied \((?:in reply to mail from command|sender blacklisted)\)|backscatter protection detected an invalid|isn'?t on the recipient'?s list of senders to accept mail from|can'?t determine purported responsible address|without a valid sender domain|denied \[bouncedeny\]|valid-address-filter|emetteur invalide|is not a registered gateway user|rule imposed mailbox access for|sending this from a different address or alias|syntax error: empty email address|unsigned dsn for|sending to/from an address that has been blacklisted|your access to submit messages to this e-mail system has been rejected,soft,rejected

# --- a recipient domain that does not exist (before the unknown-user phrases, which share "does not exist") ---
> postmaster@cx.example.org: Domain does not exist
> 550 5.1.2 Recipient address rejected: unknown domain name
(?:recipient )?domain (?:does not exist|not found|must exist)|recipient address rejected: unknown domain|no such domain|host or domain name not found,hard,hostunknown

# --- unknown users --------------------------------------------------------------------------------------
> 550 5.1.1 <kijitora@example.jp>: Recipient address rejected: User unknown in local recipient table
> 550 5.1.1 The email account that you tried to reach does not exist.
> 550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup
> 550 no such user here
> 511 sorry, no mailbox here by that name (#5.1.1 - chkuser)
user (?:is )?unknown|unknown (?:user|recipient|mailbox|local ?part|e-?mail address|address)|no such (?:user|mailbox|recipient|person|address|local user)|user (?:does not|doesn'?t) exist|(?:user|recipient|mailbox|address|account) (?:\S+ )?(?:not found|not known|does not exist|doesn'?t exist|unknown|not exist)|(?:invalid|bad|non-?existent|illegal) (?:recipient|mailbox|address|user|destination|e-?mail)|recipient address rejected(?:\.|: (?:access denied|invalid user|invalid-recipient|unknown user|userunknown|user unknown))|recipient (?:is not local|invalid|unknown|not ok)|recipientnotfound|not a valid (?:user|mailbox|recipient)|is not a (?:known|valid) (?:user|mailbox)|no mailbox (?:here|found|available|by that name)|mailbox (?:unavailable|is unavailable|invalid|not present|not found|does not exist|unavaiable)|address (?:not present|invalid|unknown|does not exist|could(?: not|n'?t) be found)|does not exist|not (?:a )?(?:local|known) (?:address|user)|there is no one at this address|no account by that name|account (?:does not exist|not exist|unavailable)|badrcptto|not in my validrcptto list|doesn'?t have a .* account|destination addresses? (?:were|was) unknown|utilisateur inconnu|nessun utente|no existe|the user'?s email name is not found|this user doesn'?t have|email address (?:is )?(?:wrong|invalid|not found|not valid)|the following recipients? (?:was|were) undeliverable|5\.1\.1 bad address|recipient unknown|not listed in|addressee unknown|no valid recipients|cannot find (?:the )?(?:recipient|user|mailbox)|unrouteable address|address not available|is not a valid e-?mail|is not an active address|nonexist(?:ent)? (?:user|mailbox)|can'?t accept user|destination server rejected recipients|invalid mailbox path|account unavailable|recipient is not accepted|recipient refuses to accept your mail|requested action not taken: mailbox unavailable|your envelope recipient has been denied|no longer valid|badrecipientto|user missing home directory|user not active|invalid or unknown virtual user|nicht gefunden wurde|in name directory|was not found in|does not exist at the organization|> not found,hard,userunknown

# --- recipient-side filters -----------------------------------------------------------------------------
> 550 5.2.1 <kijitora@example.jp>... User refuses to receive this mail
user refuses to receive|refused due to recipient preferences|message filtered|user rules|only accepting mail from specific|you have been blocked by the recipient|recipient id refuse|restricted sms|is not accepting (?:any )?mail|account is protected by|bounced address|has restricted|user reject|blocked by (?:the )?recipient|rejected by (?:the )?recipient'?s? (?:filter|rules),soft,filtered

# --- reverse DNS ----------------------------------------------------------------------------------------
> 550 5.7.25 The sending IP address does not have a PTR record
> 550 5.7.1 Client host rejected: cannot find your reverse hostname, [192.0.2.1]
ptr record|reverse (?:dns|hostname|lookup|name)|rdns|cannot find your hostname|no ptr|(?:does not|doesn'?t) have (?:a )?(?:valid )?(?:reverse|ptr)|unresolvable (?:address|host|hostname)|ip name lookup failed|client host rejected: cannot find your|hostname (?:does not match|not found in dns)|not resolve your (?:ip|address)|unverif(?:y|i)able sending ips?,soft,requireptr

# --- reputation -----------------------------------------------------------------------------------------
> 421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume or user complaints
> 550 5.7.1 Our system has detected that this message is likely suspicious due to the very low reputation of the sending IP address
(?:low|bad|poor) reputation|reputation (?:is too low|of the sending)|sending ip address (?:has|had) been temporarily|temporarily deferred due to (?:unexpected volume or )?user complaints|\[ts0[1-4]\]|tss04|has been temporarily rate limited due to ip reputation,soft,badreputation

# --- content ----------------------------------------------------------------------------------------------
> 554 5.6.0 Message contains invalid header
> 550 5.7.1 Message rejected: RFC 5322 compliance
rfc ?(?:2822|5322|822) (?:compliance|non-?compliant|violation)|not (?:rfc|rfc-)?compliant|(?:invalid|malformed|duplicate|missing) (?:message )?(?:header|headers|mime|date|message-id|from header)|header (?:error|syntax)|message (?:contains|has) (?:invalid|bad)|improper use of 8-bit|8-bit (?:data|characters)|bare lf|line too long|(?:attachment|file type) (?:not allowed|is not permitted|blocked|is blocked)|banned (?:attachment|file),soft,contenterror

# --- domains that publish no mail service (null MX) -------------------------------------------------------
> DNS Error: 24275403 DNS type 'mx' lookup of example.org responded with code NOERROR The domain example.org doesn't receive email according to the administrator: returned Null MX
> 556 5.1.10 Recipient address has null MX
null mx|(?:does not|doesn'?t) (?:accept|receive) (?:any )?e?-?mail|accepts? no mail|not accept(?:ing)? any (?:e-?)?mail|no mail accepted,hard,notaccept

# --- a lookup that names the missing host ---------------------------------------------------------------------
> DNS lookup failure: host cx.example.org not found
> 550 Host unknown (Name server: example.jp: host not found)
(?:dns lookup failure|name server): (?:host )?[\w.-]+\.[a-z]{2,}:? host not found(?!, try again)|host [\w-]+(?:\.[\w-]+)+ not found(?!, try again),hard,hostunknown

# --- DNS failures reported as such (not proof the domain is gone) -------------------------------------------
> DNS Error: 80335577 DNS type 'mx' lookup of example.jp responded with code NXDOMAIN Domain name not found: example.jp
> 451 4.4.0 DNS temporary failure
dns (?:temporary )?(?:error|failure)|dns type '?mx'? lookup|host name lookup failure|malformed (?:or unexpected )?name server reply|host not found, try again,soft,networkerror

# --- unknown host -----------------------------------------------------------------------------------------
> 550 5.1.2 Host unknown (Name server: example.jp: host not found)
> 554 5.4.4 SMTPSEND.DNS.NonExistentDomain; nonexistent domain
host (?:or domain name )?(?:unknown|not found)|unknown (?:host|domain)|domain (?:does not exist|not found|name not found|is not reachable|must exist)|no such domain|nonexistentdomain|nonexistent domain|name or service not known|mail domain mentioned in email address is unknown|the account or domain may not exist|unrouteable mail domain|unroutable address|unable to find (?:the )?domain|invalid domain|domain is invalid|no mx (?:record|host)|mx records? (?:for .* )?(?:not found|do not exist),hard,hostunknown

# --- spam ------------------------------------------------------------------------------------------------
> 550 5.7.1 Message rejected as spam by Content Filtering.
> 554 5.7.1 The message was rejected because it contains prohibited virus or spam content
\bspam\b|\bube\b|junk ?mail|bulk mail|unsolicited|message (?:was )?(?:rejected|blocked|refused) (?:due to|because of|for) (?:content|its content)|considered (?:as )?spam|classified as|scored too high|high probability of|suspicious (?:content|message|url|link)|phishing|blacklisted url|\burl(?:s)? (?:in|of) (?:your|the) message|uribl|surbl|dbl\.spamhaus|message content rejected|content filter|rejected by (?:the )?(?:content|spam) filter,soft,spamdetected

# --- rate limits and connection limits ---------------------------------------------------------------------
> 450 4.2.1 The user you are trying to contact is receiving mail at a rate that prevents additional messages from being delivered.
> 421 4.7.0 Rate limit exceeded, try again later
rate (?:limit|that prevents|limited)|sent to too many recipients|too (?:many|much) (?:mail|messages|emails|recipients?)(?: sent| from| for| in)|sending (?:too fast|rate)|receiving mail at a rate|throttl|slow down|exceeded (?:the )?(?:hourly|daily|maximum) (?:sending|message|connection)? ?(?:limit|rate|quota)|unusual rate|temporarily (?:limited|rate),soft,speeding

> 421 4.7.0 Too many concurrent SMTP connections from this IP address; please try again later
> 421 too many connections
too many (?:concurrent |simultaneous |open )?(?:smtp )?(?:connections|sessions)|connection (?:count|limit) (?:exceeded|reached)|too many connections? from|maximum (?:number of )?connections,soft,toomanyconn

# --- gave up retrying ------------------------------------------------------------------------------
> 550 5.4.316 Message expired, connection refused(Socket error)
> Could not deliver for the last 432000 seconds. Giving up.
message expired|connection timed out|could not find a gateway for|failed to deliver to domain |server did not respond|cannot connect to remote server|could not deliver for (?:the last |more than )?[\d.]+ (?:seconds|minutes|hours|days)|was not delivered within|delivery failed \d+ attempts|did not accept our requests to connect|remote host is not responding|delivery time expired|delivery expired|retry timeout exceeded|retry time not reached for any host after a long failure period|message (?:has been|was) in (?:the )?queue too long|in the queue too long|could not be delivered for (?:more than )?[\d.]+ (?:days|hours)|giving up on|was not reachable within the allowed queue period|message timed out|unable to deliver message after multiple retries|have been failing for a long time|has not been collected after|delivery attempts will continue|could not be delivered within|has been delayed|message is delayed|delivery is delayed|delivery has been delayed|is being delayed|warning: message .* still undelivered|could not be delivered to one or more recipients.*(?:retry|expired)|it has not been delivered|temporary failure.*will retry|your message could not be delivered for more than|queued too long|queue lifetime|maximum time in queue,soft,expired

# --- blocked senders / IPs ---------------------------------------------------------------------------------
> 554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org
> 550 5.7.0 <shironeko@example.jp>... Please use the smtp server of your ISP.
> 553 sorry, your remotehost looks suspiciously like spammer
> 550 SC-004 Unfortunately, messages from 192.0.2.1 weren't sent. The problem is that too many unwanted messages have been sent from the following IP address above.
> SMTP error from remote mail server after initial connection: 554 mx.example.net : CAT : your daily relay quota
blocked using|blacklist|black list|blocklist|block list|\bdnsbl\b|\brbl\b|spamhaus|spamcop|sorbs|barracudacentral|abuseat|client host (?:\S+ )?(?:rejected|blocked)|(?:ip|host|ip address|sender address|server|network|connection) (?:\S+ )?(?:is |has been |was )?(?:blocked|banned|blacklisted|refused|rejected|not allowed|listed)|access (?:from ip address )?(?:\S+ )?(?:denied|blocked)|not (?:currently )?accepting (?:mail|connections|email) from|please use the smtp server of your isp|dynamic ip|dial-?up|residential|looks suspiciously like spammer|helo command rejected|you are not allowed to connect|go away|connection refused by|service not available|rejected because the sending mta|your (?:ip|server|network|access) .* (?:blocked|rejected|banned|listed)|was blocked by|is blocked|refused to talk to me|confirm this mail server|open proxy|not accepting connections|weren'?t sent|too many unwanted messages|not currently accepting mail from your ip|bad sender ip address|banned sending ip|blacklisted by|extreme bad ip profile|host network not allowed|hosts with dynamic ip|invalid ip for sending mail|no access from mail server|part of their network is on our block ?list|sender ip address rejected|server access forbidden by your ip|too many spams from your ip|not accept mail from dynamic ips|you are sending spam|your network is temporar(?:y|ily) blacklisted|your server requires confirmation|error from remote mail server after initial connection|connection reset by peer|may not be mail exchanger|was not authenticated,soft,blocked

# --- viruses ----------------------------------------------------------------------------------------------
> 550 5.7.1 Message contains a virus (Eicar-Test-Signature)
virus|malware|infected|trojan|worm detected|eicar,soft,virusdetected

# --- local policy ---------------------------------------------------------------------------------------------
> 550 5.7.1 Delivery not authorized, message refused due to local policy
> 554 5.7.9 Message not accepted for policy reasons.
polic(?:y|ies)|prohibited|not authorized|administrative(?:ly)? (?:prohibit|denied)|not permitted|violat,soft,policyviolation

# --- protocol syntax ------------------------------------------------------------------------------------
> 504 Command parameter not implemented
> 501 5.5.4 Syntax error in parameters or arguments
syntax error|command (?:parameter )?not (?:implemented|recognized)|unrecognized command|bad sequence of commands|command not (?:recognized|understood)|invalid command,soft,syntaxerror

# --- remote system problems -------------------------------------------------------------------------------------
> 451 4.3.0 Temporary system failure
(?:local|system|server|internal|temporary) (?:error|failure|problem)|system (?:is )?(?:not accepting|unavailable|busy)|service (?:is )?(?:currently )?unavailable|server (?:is )?busy|try again later|resources temporarily unavailable|out of memory|i/o error|configuration error|misconfigur|mail system (?:problem|congestion)|loops? back to myself|database error|unable to process|processing error,soft,systemerror

# --- disk full on the remote system -----------------------------------------------------------------------------------
> 452 4.3.1 Insufficient system storage
insufficient system storage|system (?:storage|disk) (?:is )?full|mail system full|disk full|out of disk space,soft,systemfull

# --- network / DNS ------------------------------------------------------------------------------------------------------
> 554 5.4.6 Hop count exceeded - possible mail loop
> 451 4.4.0 DNS temporary failure
host name lookup failure|host not found, try again|malformed (?:or unexpected )?name server reply|no route to host|host is unreachable|network is unreachable|connection (?:timed out|refused|reset|dropped|was dropped|closed)|mail (?:forwarding )?loop|routing loop|too many hops|hop count exceeded|message looping|unable to (?:resolve|route)|dns (?:error|failure|lookup|records|temporary)|could not connect|lost connection|timeout|timed out|tls (?:handshake|negotiation)|network error|name server|nameserver|unreachable,soft,networkerror

# --- STARTTLS / security ----------------------------------------------------------------------------------------------------
> 530 5.7.0 Must issue a STARTTLS command first
starttls|tls required|must issue a starttls|encryption required|requiretls,soft,failedstarttls

> 535 5.7.8 Authentication credentials invalid
authentication (?:required|credentials|failed)|auth(?:entication)? (?:is )?required|must (?:be )?authenticate|relay requires authentication|certificate|security,soft,securityerror

# --- local delivery programs -----------------------------------------------------------------------------------------------------
> 554 5.3.0 unknown mailer error 255
mailer error|unknown mailer|procmail|command (?:died|output)|exit(?:ed)? (?:status|code)|pipe to |x-unix,soft,mailererror

# --- sender-side suppression lists -------------------------------------------------------------------------------------------
> 554 5.0.0 Address is on the suppression list
suppression list|suppressed|previously (?:bounced|hard bounced|marked as spam)|spam reporting address,soft,suppressed
`;
