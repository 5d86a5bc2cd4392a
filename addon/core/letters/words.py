"""The languages core.letters knows (their names), and common words of English and of each, for telling which
language a transcript is written in (core.transcript.transcript_language). The lists were written for this project
from general knowledge of each language: articles, pronouns, prepositions, conjunctions, auxiliaries, common verbs
and adverbs.

A word that is also an English word or an English name ("a", "in", "no", "son", "die", "was", "er", "ma", "hoe",
"les", "al", "mia", "ben", "her", "men", "dove"...) is left out of the other languages' lists: an English line with it
must not vote for another language. Where such a word is common in both, ``SHARED_WITH_ENGLISH`` lists it under the
other language: it says nothing about English against that language, so it counts for neither.
"""

from __future__ import annotations

LANGUAGE_NAMES = {"en": "English", "es": "Spanish", "fr": "French", "de": "German", "it": "Italian",
                  "pt": "Portuguese", "nl": "Dutch", "sv": "Swedish", "pl": "Polish", "tr": "Turkish",
                  "zh": "Mandarin pinyin", "ja": "Japanese"}
TONE_DIGIT = r"(?<=[a-zü])[1-5](?!\d)"  # a tone number after a pinyin syllable, in lower case ("ba4", not "b12")


def is_han(c: str) -> bool:
    """Whether a character is a Chinese character (a kanji or hanzi; 々 repeats one)."""
    return "\u4e00" <= c <= "\u9fff" or "\u3400" <= c <= "\u4dbf" or "\uf900" <= c <= "\ufaff" or c == "\u3005"


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


ENGLISH = _words("""
    the a an and or but of to in on at for with by from is are was were be been being it its this that these those as
    i you he she we they me him us them my your his her our their not no yes do does did have has had will would
    can could shall should may might must what where when who why how which there here all some any just so if
    then than up out about into over now oh well hey hello please thank thanks okay ok let let's i'm you're it's
    don't can't won't isn't
    said say says tell told ask asked went go goes going gone get gets got take took make made know knew think thought
    see saw seen want wanted need needs like look looked give gave find found keep kept call called meet every
    never always again still very really too only because after while until through more most much many other
    another each both such own new old good great little long right last first next one two three time day year
    people way thing something nothing everything anything someone everyone mr mrs ms dr back down off around away
    yet ever though although without against between along across behind upon that's there's what's i've i'll i'd
    we're they're we'll didn't doesn't wasn't aren't couldn't wouldn't haven't""")

OTHER: dict[str, frozenset[str]] = {
    "es": _words("""el la los las del que y en un una unos unas por con para es está están estoy pero
        como cómo más muy yo tú usted ustedes nosotros ellos ella su sus mi mis tu qué dónde cuando cuándo porque
        hay estar tengo tiene quiero hola gracias sí también ahora aquí bueno buenos buenas señor señora de nos
        algo antes después siempre nunca puedo puedes puede
        le te se este esta esto estos estas ese esa eso esos esas aquel aquella mucho mucha muchos muchas otro otra
        otros otras toda todos todas cada nadie alguien entre desde sobre hacia según durante tampoco aún todavía
        luego entonces pues aunque mientras quien quién cuál cuánto eres somos fue fui eran estaba estamos hemos
        había hacer hace hizo hago voy vas va vamos tienes tenemos quiere quieres queremos podemos dijo decir
        ver veo bien mejor peor nuevo nueva pequeño pequeña hoy ayer noche día tarde temprano ellas él mí ti
        conmigo contigo nuestro nuestra vuestro sino menos casi así sólo allí allá ahí gusta"""),
    "fr": _words("""le la les de des du et un une est sont je tu il elle nous vous ils elles pas que qui
        avec pour dans sur mais ou où très c'est bonjour merci oui suis avons êtes ce cette
        au aux avez ont était étais été être avoir faire fait va vais allons aller peux peut veux veut dois doit
        sommes j' qu' n' s' c' l' d' m' ne moi toi lui eux leur leurs mon ses mes tes notre votre nos vos ces cet
        ceci cela ça celui celle quoi pourquoi quand combien comme aussi toujours jamais rien bien beaucoup peu
        trop déjà maintenant aujourd'hui demain soir matin nuit jour chez sous vers entre depuis parce puis alors
        donc si non bonsoir deux trois quatre petit bonne tout tous toute toutes en te se"""),
    "de": _words("""der das und ist ich nicht zu ein eine einen mit für wo bitte sehr heute sind wir sie
        es auf den dem auch noch nur wie kein keine haben habe danke ja nein guten ihr mein dein im am vom zum zur
        beim
        des einer eines einem diese dieser dieses diesen jetzt schon immer nie oder aber doch denn weil dass
        wenn als ob bis seit nach bei über unter vor durch gegen ohne zwischen mir dich mich sich uns euch ihm ihn
        ihnen sein seinen ihre unser unsere meine deine meinen nichts etwas viel viele mehr ganz wieder hier
        dort morgen gestern wer warum wann welche welcher hatte hatten bist seid wird werden wurde kann können
        müssen soll sollen möchte wollen geht gehen kommt kommen macht machen sagt sagen gibt geben sehen sieht
        einmal gern gerne zusammen vielleicht natürlich wirklich"""),
    "it": _words("""il la le gli di che non un una per con sono è mi si ti ci molto della del al dove
        questo questa quella grazie ciao buongiorno anche io tu lui lei abbiamo siamo ho hai nel nella sul sulla
        bella bello ogni mio sempre domani oggi
        uno degli dei delle dello dal dalla dai dalle nei nelle negli col alla alle agli allo sullo dell' nell'
        all' dall' sull' quest' un' c'è ancora mai già più molta molti molte tanto troppo tutto tutti tutta tutte
        niente nulla qualcosa qualcuno altro altra altri questi queste quello quelli quale quando perché cosa
        cui però oppure se sei siete erano stato stata essere avere avete hanno fa fare faccio fatto vado
        andare andiamo viene vieni posso puoi può possiamo voglio vuoi vuole devo deve dobbiamo detto vedere sì
        prego buonasera buona buono bene ieri adesso poi prima dopo qui qua lì là tuo tua suo sua nostro nostra
        vostro loro noi voi te tra fra senza sotto sopra dentro fuori verso davanti dietro insieme quanto"""),
    "pt": _words("""os de que não um uma eu meu minha você ele ela nós com para por muito onde
        obrigado obrigada sim isso este esta está é da dos das vamos na amanhã hoje também
        em ao aos à às pelo pela pelos pelas num numa numas nos nas deste desta neste nesta nesse
        nessa naquele naquela isto aquilo aquele aquela esse essa estes estas esses essas seu sua seus suas teu tua
        teus meus minhas nosso nossa nossos nossas dele dela deles delas lhe lhes comigo contigo eles elas vocês mas
        ou porque quando como ainda já sempre nunca agora depois antes aqui lá muita muitos muitas pouco
        pouca mais menos bem bom bons melhor pior tudo toda todos todas ninguém alguém algo coisa ontem
        noite tarde manhã sou somos são foi fui foram eram estar estou estamos estão estava ter tenho tem temos têm
        tinha fazer faz faço ir vou vai vão posso pode podemos quero quer queremos sei sabe diz disse vejo ver
        há olá tchau sem até sobre entre perto longe então porquê te se"""),
    "nl": _words("""de het een en ik je jij van niet waar wat dat met voor op zijn wij ze hij maar ook nog
        graag dank ja nee goed bij hebben heb heeft geen vaak
        dit deze om naar uit aan onder tegen zonder tussen als omdat nooit altijd soms hier daar wie waarom
        wanneer waren hebt hadden wordt worden werd kan kunnen moet moeten wil willen zal zullen zou gaat gaan
        ga komt komen doet doen zegt zeggen mijn jouw jullie ons onze haar zich mij jou zo veel weinig
        meer alles niets iets iemand niemand elke ieder nu straks morgen gisteren vandaag bedankt
        alstublieft mooi nieuw oud samen toen dus nou zij te"""),
    "sv": _words("""och på är det en med inte som för jag du vi hon han ett att av varje mycket
        här där också
        de dem detta denna dessa från om över efter innan mellan genom utan hos mot sen när var
        vad hur varför vem vilken vilket vilka kan ska skall skulle vill måste får fick har hade blev bli blir vara
        varit kommer kom går gick gör gjorde säger sa sade såg tog bara redan aldrig alltid ofta nu så
        nej ja hej stor stora liten lilla nya gamla idag imorgon igår mig sig oss honom henne min
        ditt sitt sina vår vårt våra deras hennes något någon några inget ingen alla allt hemma
        många mer mest eller även därför eftersom medan tills kanske"""),
    "pl": _words("""nie się jest na że z po ja ty jak tak ale czy nad przez bardzo tylko jutro
        w od dla bez przed przy za ze co kto gdzie kiedy dlaczego jaki jaka jakie który która które tego tej tym
        tu tam teraz dziś dzisiaj wczoraj zawsze nigdy często już jeszcze też także więc albo lub oraz ona
        oni wy mnie mi ci jej jego moja moje mojego twój twoja nasz nasza wasz swój swoja jestem jesteś
        jesteśmy są był była było byli być masz mamy mają miał miała mieć może można musi muszę chcę chce idę idzie
        jedzie robi robić wiem dobrze dobry dobra trochę dużo mało wszystko wszyscy nic coś ktoś nikt proszę
        dziękuję dzień te"""),
    "tr": _words("""bir ve bu da için çok ne ile değil yok
        şu sen siz onlar bana sana ona bize onlara beni seni onu bunu şunu benim senin onun bizim sizin
        onların bunlar şunlar burada orada nerede nereye nasıl neden niçin hangi kaç de gibi kadar daha hiç
        şey evet hayır merhaba teşekkür teşekkürler lütfen tamam sonra önce şimdi bugün yarın dün sabah akşam
        gece iyi güzel büyük küçük yeni eski mi mı mu mü ki diye ama fakat ancak veya sadece artık hemen
        birlikte yine tekrar çünkü eğer olarak olan oldu olur olmak ise bütün tüm biraz yapar yaptı yapıyor yapmak
        geldi gitti geliyor gidiyor istiyorum istedi seviyorum"""),
}

# Words common in English and in the language too: they tell neither apart from the other, so they count neither as
# English against it nor as its own (they are not in OTHER).
SHARED_WITH_ENGLISH: dict[str, frozenset[str]] = {
    "es": _words("a no me he has"),
    "fr": _words("a on me as an or"),
    "de": _words("in so was will an still"),
    "it": _words("a in me so do i no"),
    "pt": _words("a as no do me"),
    "nl": _words("in is was of we me had over want"),
    "sv": _words("i"),
    "pl": _words("i a no to do on go we my"),
    "tr": _words("her on"),
}
# English words common in none of the other languages: a line with enough of them is English even where a few of its
# words are spelled with letters English never uses (names: "Take the Autobahn to Köln, then ask for Jürgen.").
PLAIN_ENGLISH = ENGLISH.difference(*SHARED_WITH_ENGLISH.values())
