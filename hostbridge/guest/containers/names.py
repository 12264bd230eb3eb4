"""Random container names in docker's style: ``adjective_surname``."""

_LEFT = ("admiring adoring affectionate agitated amazing angry awesome beautiful blissful bold "
         "boring brave busy charming clever compassionate competent condescending confident cool "
         "cranky crazy dazzling determined distracted dreamy eager ecstatic elastic elated elegant "
         "eloquent epic exciting fervent festive flamboyant focused friendly frosty funny gallant "
         "gifted goofy gracious great happy hardcore heuristic hopeful hungry infallible inspiring "
         "intelligent interesting jolly jovial keen kind laughing loving lucid magical modest "
         "musing mystifying naughty nervous nice nifty nostalgic objective optimistic peaceful "
         "pedantic pensive practical priceless quirky quizzical recursing relaxed reverent "
         "romantic sad serene sharp silly sleepy stoic strange stupefied suspicious sweet tender "
         "thirsty trusting unruffled upbeat vibrant vigilant vigorous wizardly wonderful xenodochial "
         "youthful zealous zen").split()
_RIGHT = ("agnesi albattani allen almeida archimedes ardinghelli aryabhata austin babbage banach "
          "bardeen bartik bassi beaver bell benz bhabha bhaskara blackwell bohr booth borg bose "
          "boyd brahmagupta brattain brown buck burnell cannon carson cartwright carver cerf "
          "chandrasekhar chaplygin chatelet chatterjee chebyshev cohen colden cori cray curie "
          "darwin davinci dewdney dhawan diffie dijkstra dirac driscoll dubinsky easley edison "
          "einstein elbakyan elgamal elion ellis engelbart euclid euler faraday feistel fermat "
          "fermi feynman franklin gagarin galileo galois ganguly gates gauss germain goldberg "
          "goldstine goldwasser golick goodall gould greider grothendieck haibt hamilton haslett "
          "hawking heisenberg hellman hermann herschel hertz heyrovsky hodgkin hofstadter hoover "
          "hopper hugle hypatia jackson jang jemison jennings jepsen johnson joliot jones kalam "
          "kapitsa kare keldysh keller kepler khayyam khorana kilby kirch knuth kowalevski lalande "
          "lamarr lamport leakey leavitt lederberg lehmann lewin lichterman liskov lovelace "
          "lumiere mahavira margulis matsumoto maxwell mayer mccarthy mcclintock mclaren mclean "
          "mcnulty meitner mendel mendeleev merkle mestorf mirzakhani montalcini moore morse "
          "moser murdock napier nash neumann newton nightingale nobel noether northcutt noyce "
          "panini pare pascal pasteur payne perlman pike poincare poitras proskuriakova ptolemy "
          "raman ramanujan rhodes ride ritchie robinson roentgen rosalind rubin saha sammet "
          "sanderson satoshi shamir shannon shaw shirley shockley shtern sinoussi snyder solomon "
          "spence stonebraker sutherland swanson swartz swirles taussig tesla tharp thompson "
          "torvalds tu turing varahamihira vaughan villani visvesvaraya volhard wescoff wilbur "
          "wiles williams williamson wilson wing wozniak wright wu yalow yonath zhukovsky").split()


def random_name(taken) -> str:
    """A fresh name not in ``taken`` (a container of names)."""
    import random  # not at start: a fair part of one in an emulated guest
    for i in range(1000):
        name = "%s_%s" % (random.choice(_LEFT), random.choice(_RIGHT))
        if i > 10:
            name += str(random.randint(0, 99))
        if name not in taken:
            return name
    raise RuntimeError("could not find a free container name")
