"""Small text samples in natural languages and programming languages, written for lens.

Used by the ``language_neurons`` study on models that are not the organism (e.g. SmolLM2).
Each language has eight short paragraphs (a few hundred tokens in all) on everyday topics;
each programming language has eight short snippets. All texts were written for this project.

Example:
    >>> from lens.studies.samples import SAMPLES
    >>> sorted(SAMPLES)
    ['c', 'de', 'en', 'es', 'fr', 'javascript', 'python']
    >>> all(len(texts) == 8 for texts in SAMPLES.values())
    True
"""

from __future__ import annotations

ENGLISH = [
    "The market opens early on Saturday. Farmers bring apples, fresh bread and cheese, and "
    "the smell of coffee drifts across the square while children chase pigeons.",
    "My grandmother kept a small garden behind her house. Every spring she planted tomatoes "
    "and beans, and she always said that patience was the most important tool.",
    "The train was late again this morning, so I read the newspaper on the platform. "
    "There was an article about a new bridge that will cross the river next year.",
    "When the storm arrived, the lights went out in the whole village. We lit candles, "
    "played cards at the kitchen table and listened to the wind against the windows.",
    "Learning to swim as an adult is not easy. The first lessons were frightening, but "
    "after a few weeks I could cross the pool without stopping to breathe.",
    "The library in our town has a reading room with tall windows. Students study there "
    "in the afternoon, and an old man comes every day to read the same history book.",
    "Our neighbours adopted a dog from the shelter last month. He is shy with strangers, "
    "but he waits at the door every evening until the children come home from school.",
    "Before the concert, the musicians tuned their instruments in silence. Then the "
    "conductor raised his hands, and the first notes filled the old wooden hall.",
]

FRENCH = [
    "Le marché ouvre tôt le samedi. Les paysans apportent des pommes, du pain frais et du "
    "fromage, et l'odeur du café traverse la place pendant que les enfants courent.",
    "Ma grand-mère avait un petit jardin derrière sa maison. Chaque printemps, elle "
    "plantait des tomates et des haricots, et elle disait que la patience était essentielle.",
    "Le train avait encore du retard ce matin, alors j'ai lu le journal sur le quai. Il y "
    "avait un article sur un nouveau pont qui traversera la rivière l'année prochaine.",
    "Quand l'orage est arrivé, toutes les lumières du village se sont éteintes. Nous avons "
    "allumé des bougies et joué aux cartes sur la table de la cuisine.",
    "Apprendre à nager à l'âge adulte n'est pas facile. Les premières leçons me faisaient "
    "peur, mais après quelques semaines je traversais la piscine sans m'arrêter.",
    "La bibliothèque de notre ville possède une salle de lecture aux grandes fenêtres. Les "
    "étudiants y travaillent l'après-midi, et un vieil homme vient lire chaque jour.",
    "Nos voisins ont adopté un chien le mois dernier. Il est timide avec les inconnus, mais "
    "il attend devant la porte chaque soir jusqu'au retour des enfants.",
    "Avant le concert, les musiciens accordaient leurs instruments en silence. Puis le chef "
    "d'orchestre a levé les mains, et les premières notes ont rempli la vieille salle.",
]

GERMAN = [
    "Der Markt öffnet am Samstag früh. Die Bauern bringen Äpfel, frisches Brot und Käse, "
    "und der Duft von Kaffee zieht über den Platz, während die Kinder Tauben jagen.",
    "Meine Großmutter hatte einen kleinen Garten hinter ihrem Haus. Jeden Frühling pflanzte "
    "sie Tomaten und Bohnen, und sie sagte immer, Geduld sei das wichtigste Werkzeug.",
    "Der Zug hatte heute Morgen wieder Verspätung, also las ich die Zeitung auf dem "
    "Bahnsteig. Darin stand ein Artikel über eine neue Brücke über den Fluss.",
    "Als das Gewitter kam, ging im ganzen Dorf das Licht aus. Wir zündeten Kerzen an, "
    "spielten Karten am Küchentisch und hörten dem Wind an den Fenstern zu.",
    "Als Erwachsener schwimmen zu lernen ist nicht leicht. Die ersten Stunden machten mir "
    "Angst, aber nach einigen Wochen schwamm ich ohne Pause durch das ganze Becken.",
    "Die Bibliothek unserer Stadt hat einen Lesesaal mit hohen Fenstern. Studenten lernen "
    "dort am Nachmittag, und ein alter Mann liest jeden Tag dasselbe Geschichtsbuch.",
    "Unsere Nachbarn haben letzten Monat einen Hund aus dem Tierheim geholt. Er ist scheu "
    "bei Fremden, aber er wartet jeden Abend an der Tür, bis die Kinder heimkommen.",
    "Vor dem Konzert stimmten die Musiker schweigend ihre Instrumente. Dann hob der "
    "Dirigent die Hände, und die ersten Töne füllten den alten hölzernen Saal.",
]

SPANISH = [
    "El mercado abre temprano los sábados. Los campesinos traen manzanas, pan fresco y "
    "queso, y el olor del café cruza la plaza mientras los niños persiguen palomas.",
    "Mi abuela tenía un pequeño huerto detrás de su casa. Cada primavera plantaba tomates "
    "y judías, y siempre decía que la paciencia era la herramienta más importante.",
    "El tren volvió a llegar tarde esta mañana, así que leí el periódico en el andén. "
    "Había un artículo sobre un puente nuevo que cruzará el río el año que viene.",
    "Cuando llegó la tormenta, se apagaron las luces de todo el pueblo. Encendimos velas, "
    "jugamos a las cartas en la mesa de la cocina y escuchamos el viento.",
    "Aprender a nadar de adulto no es fácil. Las primeras clases me daban miedo, pero "
    "después de unas semanas podía cruzar la piscina sin detenerme a respirar.",
    "La biblioteca de nuestro pueblo tiene una sala de lectura con ventanas altas. Los "
    "estudiantes estudian allí por la tarde, y un anciano viene a leer todos los días.",
    "Nuestros vecinos adoptaron un perro del refugio el mes pasado. Es tímido con los "
    "desconocidos, pero espera en la puerta cada tarde hasta que vuelven los niños.",
    "Antes del concierto, los músicos afinaban sus instrumentos en silencio. Luego el "
    "director levantó las manos y las primeras notas llenaron la vieja sala de madera.",
]

PYTHON = [
    "def mean(values):\n    total = 0\n    for v in values:\n        total += v\n"
    "    return total / len(values)\n",
    "import json\n\nwith open('config.json') as f:\n    settings = json.load(f)\n"
    "print(settings.get('name', 'unknown'))\n",
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n"
    "    def push(self, item):\n        self.items.append(item)\n",
    "words = text.split()\ncounts = {}\nfor w in words:\n    counts[w] = counts.get(w, 0) + 1\n"
    "top = sorted(counts.items(), key=lambda kv: -kv[1])[:10]\n",
    "def is_prime(n):\n    if n < 2:\n        return False\n"
    "    for d in range(2, int(n ** 0.5) + 1):\n"
    "        if n % d == 0:\n            return False\n    return True\n",
    "squares = [x * x for x in range(10) if x % 2 == 0]\nnames = {p.name: p for p in people}\n"
    "print(len(squares), sorted(names))\n",
    "try:\n    value = int(user_input)\nexcept ValueError:\n    value = None\n"
    "finally:\n    print('done')\n",
    "from pathlib import Path\n\nfor path in Path('.').glob('*.txt'):\n"
    "    lines = path.read_text().splitlines()\n    print(path.name, len(lines))\n",
]

JAVASCRIPT = [
    "function mean(values) {\n  let total = 0;\n  for (const v of values) {\n    total += v;\n"
    "  }\n  return total / values.length;\n}\n",
    "const settings = JSON.parse(fs.readFileSync('config.json', 'utf8'));\n"
    "console.log(settings.name ?? 'unknown');\n",
    "class Stack {\n  constructor() {\n    this.items = [];\n  }\n  push(item) {\n"
    "    this.items.push(item);\n  }\n}\n",
    "const counts = {};\nfor (const w of text.split(/\\s+/)) {\n"
    "  counts[w] = (counts[w] || 0) + 1;\n}\n"
    "const top = Object.entries(counts).sort((a, b) => b[1] - a[1]).slice(0, 10);\n",
    "function isPrime(n) {\n  if (n < 2) return false;\n  for (let d = 2; d * d <= n; d++) {\n"
    "    if (n % d === 0) return false;\n  }\n  return true;\n}\n",
    "const squares = [...Array(10).keys()].filter(x => x % 2 === 0).map(x => x * x);\n"
    "document.getElementById('out').textContent = squares.join(', ');\n",
    "async function load(url) {\n  try {\n    const res = await fetch(url);\n"
    "    return await res.json();\n  } catch (err) {\n    console.error(err);\n  }\n}\n",
    "button.addEventListener('click', () => {\n  count += 1;\n"
    "  label.innerText = `Clicked ${count} times`;\n});\n",
]

C = [
    "double mean(const double *values, int n) {\n    double total = 0.0;\n"
    "    for (int i = 0; i < n; i++) {\n        total += values[i];\n    }\n"
    "    return total / n;\n}\n",
    '#include <stdio.h>\n\nint main(void) {\n    FILE *f = fopen("config.txt", "r");\n'
    "    if (f == NULL) {\n        return 1;\n    }\n    fclose(f);\n    return 0;\n}\n",
    "struct stack {\n    int items[64];\n    int top;\n};\n\n"
    "void push(struct stack *s, int item) {\n    s->items[s->top++] = item;\n}\n",
    "int count_words(const char *s) {\n    int n = 0, in_word = 0;\n    for (; *s; s++) {\n"
    "        if (*s == ' ') in_word = 0;\n        else if (!in_word) { in_word = 1; n++; }\n"
    "    }\n    return n;\n}\n",
    "int is_prime(int n) {\n    if (n < 2) return 0;\n    for (int d = 2; d * d <= n; d++) {\n"
    "        if (n % d == 0) return 0;\n    }\n    return 1;\n}\n",
    "int squares[5];\nfor (int i = 0; i < 5; i++) {\n    squares[i] = 2 * i * 2 * i;\n}\n"
    'printf("%d\\n", squares[4]);\n',
    "char *copy = malloc(strlen(name) + 1);\nif (copy == NULL) {\n"
    '    perror("malloc");\n    exit(EXIT_FAILURE);\n}\nstrcpy(copy, name);\nfree(copy);\n',
    "#define MAX(a, b) ((a) > (b) ? (a) : (b))\n\nstatic int clamp(int x, int lo, int hi) {\n"
    "    return MAX(lo, x < hi ? x : hi);\n}\n",
]

SAMPLES: dict[str, list[str]] = {
    "en": ENGLISH,
    "fr": FRENCH,
    "de": GERMAN,
    "es": SPANISH,
    "python": PYTHON,
    "javascript": JAVASCRIPT,
    "c": C,
}
NATURAL = ("en", "fr", "de", "es")
CODE = ("python", "javascript", "c")


def samples(languages: list[str] | None = None) -> dict[str, list[str]]:
    """The samples of ``languages`` (None = all), as fresh lists.

    Example:
        >>> len(samples(["fr"])["fr"])
        8
    """
    names = list(SAMPLES) if languages is None else list(languages)
    unknown = [n for n in names if n not in SAMPLES]
    if unknown:
        raise KeyError(f"no samples for {unknown}; known: {sorted(SAMPLES)}")
    return {n: list(SAMPLES[n]) for n in names}
