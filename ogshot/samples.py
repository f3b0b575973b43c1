"""Sample titles in many scripts and synthetic captures: for the contact sheet, tests and benches.

The captures are drawn here rather than shipped, so they cost nothing to keep and are the same on
every machine: a light page, a dark page, a busy, noisy photo-like image, and a white page crowded
with thin coloured text and photos.
"""

from __future__ import annotations

import random

from PIL import Image, ImageDraw, ImageFilter

#: (label, title) pairs covering the scripts a card must set.
TITLES: tuple[tuple[str, str], ...] = (
    ("latin", "Ça roule: naïve café déjà vu, Łódź & Ærøskøbing"),
    ("cyrillic", "Быстрые карточки для социальных сетей"),
    ("greek", "Γρήγορες κάρτες για κοινωνικά δίκτυα"),
    ("arabic", "مرحبا بالعالم: بطاقات سريعة للشبكات الاجتماعية"),
    ("hebrew", "שלום עולם: כרטיסים מהירים לרשתות חברתיות"),
    ("mixed", "دليل Python 3.12 الجديد: ما الذي تغيّر في asyncio؟"),
    ("devanagari", "सामाजिक नेटवर्क के लिए तेज़ कार्ड"),
    ("thai", "การ์ดแบบรวดเร็วสำหรับเครือข่ายสังคม"),
    ("chinese", "为社交网络快速生成预览卡片，支持所有文字"),
    ("japanese", "ソーシャルカードを高速に生成する方法とその仕組み"),
    ("korean", "소셜 네트워크를 위한 빠른 미리보기 카드"),
    ("emoji", "Ship it 🚀 with the team 👩‍💻👨‍👩‍👧 🇫🇷🇯🇵 ❤️"),
    ("combining", "Ṱ̈e̊x̧t w̃ith c̆ombining m̄arks"),
    ("long-word", "Pneumonoultramicroscopicsilicovolcanoconiosis" * 6),
)


def light_page(size: tuple[int, int] = (1280, 800), seed: int = 1) -> Image.Image:
    """A white web page: a header bar, a heading, paragraphs and a picture."""
    rnd = random.Random(seed)
    w, h = size
    img = Image.new("RGB", size, (250, 250, 252))
    d = ImageDraw.Draw(img)
    d.rectangle((0, 0, w, 64), fill=(255, 255, 255))
    d.rectangle((0, 63, w, 64), fill=(226, 232, 240))
    d.rounded_rectangle((40, 20, 160, 44), 8, fill=(37, 99, 235))
    for i in range(4):
        d.rounded_rectangle((w - 520 + i * 120, 26, w - 440 + i * 120, 38), 6, fill=(148, 163, 184))
    d.rounded_rectangle((120, 120, 120 + int(w * 0.55), 170), 10, fill=(15, 23, 42))
    y = 210
    for _ in range(9):
        d.rounded_rectangle((120, y, 120 + rnd.randint(420, 700), y + 14), 7, fill=(100, 116, 139))
        y += 30
    d.rounded_rectangle((w - 420, 200, w - 120, 480), 16, fill=(191, 219, 254))
    d.ellipse((w - 330, 260, w - 210, 380), fill=(96, 165, 250))
    return img


def dark_page(size: tuple[int, int] = (1280, 800), seed: int = 2) -> Image.Image:
    """A dark-themed page: code blocks and bright accents on near-black."""
    rnd = random.Random(seed)
    w, h = size
    img = Image.new("RGB", size, (13, 17, 23))
    d = ImageDraw.Draw(img)
    d.rectangle((0, 0, w, 60), fill=(22, 27, 34))
    d.rounded_rectangle((40, 18, 170, 42), 8, fill=(240, 246, 252))
    d.rounded_rectangle((100, 110, 100 + int(w * 0.5), 156), 10, fill=(230, 237, 243))
    y = 200
    palette = [(255, 123, 114), (121, 192, 255), (210, 168, 255), (126, 231, 135)]
    d.rounded_rectangle((100, 190, w - 100, 560), 12, fill=(22, 27, 34))
    for _ in range(10):
        x = 130
        for _ in range(rnd.randint(2, 5)):
            span = rnd.randint(40, 160)
            d.rounded_rectangle((x, y + 10, x + span, y + 22), 5, fill=rnd.choice(palette))
            x += span + 16
        y += 34
    return img


def noisy(size: tuple[int, int] = (1280, 800), seed: int = 3) -> Image.Image:
    """A busy image with every brightness in it: the hardest background for text."""
    rnd = random.Random(seed)
    small = Image.new("RGB", (size[0] // 8, size[1] // 8))
    small.putdata(
        [
            (rnd.randrange(256), rnd.randrange(256), rnd.randrange(256))
            for _ in range(small.width * small.height)
        ]
    )
    img = small.resize(size, Image.Resampling.NEAREST).filter(ImageFilter.GaussianBlur(2))
    d = ImageDraw.Draw(img)
    for _ in range(40):
        x, y = rnd.randrange(size[0]), rnd.randrange(size[1])
        r = rnd.randint(10, 90)
        shade = rnd.choice([(255, 255, 255), (0, 0, 0), (255, 220, 0)])
        d.ellipse((x - r, y - r, x + r, y + r), fill=shade)
    return img


def light_busy(size: tuple[int, int] = (1280, 800), seed: int = 4) -> Image.Image:
    """A white page crowded with thin coloured text and photos, up to its top left corner.

    The hardest light page for what a card puts there (an accent bar, a site label): nothing
    is calm, dark and light pixels sit side by side.
    """
    rnd = random.Random(seed)
    w, h = size
    img = Image.new("RGB", size, (255, 255, 255))
    d = ImageDraw.Draw(img)
    inks = [(37, 99, 235), (220, 38, 38), (22, 163, 74), (147, 51, 234), (234, 88, 12),
            (15, 23, 42), (100, 116, 139), (8, 145, 178)]

    def text(x0: int, y0: int, x1: int, y1: int, pitch: int, height: int) -> None:
        """Lines of thin coloured words."""
        for y in range(y0, y1 - height, pitch):
            x = x0 + rnd.randint(0, 12)
            colour = rnd.choice(inks)
            while x < x1 - 20:
                word = rnd.randint(14, 70)
                d.rectangle((x, y, min(x1, x + word), y + height - 1), fill=colour)
                x += word + rnd.randint(6, 11)
                if rnd.random() < 0.15:
                    colour = rnd.choice(inks)

    def photo(box: tuple[int, int, int, int]) -> None:
        """Smooth blotches of colour and a few bright and dark shapes: a photograph."""
        x0, y0, x1, y1 = box
        pw, ph = x1 - x0, y1 - y0
        small = Image.new("RGB", (max(2, pw // 24), max(2, ph // 24)))
        small.putdata([
            (rnd.randrange(40, 256), rnd.randrange(30, 230), rnd.randrange(20, 220))
            for _ in range(small.width * small.height)
        ])
        pic = small.resize((pw, ph), Image.Resampling.BICUBIC)
        pd = ImageDraw.Draw(pic)
        for _ in range(6):
            cx, cy, r = rnd.randrange(pw), rnd.randrange(ph), rnd.randint(8, max(9, pw // 5))
            pd.ellipse((cx - r, cy - r, cx + r, cy + r),
                       fill=rnd.choice([(250, 250, 245), (20, 20, 24), (240, 200, 60)]))
        img.paste(pic.filter(ImageFilter.GaussianBlur(1.5)), (x0, y0))

    # A top bar of coloured links, a strip of thumbnails, then columns of text and pictures.
    text(16, 10, w - 16, 40, 14, 3)
    for i in range(9):
        photo((16 + i * 140, 48, 16 + i * 140 + 128, 128))
    text(16, 140, w // 2 - 20, 260, 9, 2)
    photo((w // 2, 140, w - 16, 420))
    text(16, 270, w // 2 - 20, h - 16, 11, 2)
    for i in range(3):
        photo((w // 2 + i * 208, 440, w // 2 + i * 208 + 196, 600))
    text(w // 2, 612, w - 16, h - 16, 10, 2)
    return img


CAPTURES = {"light": light_page, "dark": dark_page, "noisy": noisy, "light-busy": light_busy}
