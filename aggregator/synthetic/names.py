"""Name and country pools of the synthetic nation: family and given names per language, country words.

Only characters that cp1252 can encode, so the organisations whose systems write Windows code pages can export them.
"""

from __future__ import annotations


# ------------------------------------------------------------------------------------------------ names (cp1252-safe)

def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


NAME_POOLS: dict[str, tuple[list[str], list[str], list[str]]] = {
    # pool -> (family names, female given names, male given names); only characters cp1252 can encode
    "nl": (
        _split("de Jong, Jansen, de Vries, van den Berg, van Dijk, Bakker, Janssen, Visser, Smit, Meijer, de Boer, Mulder,"
               "de Groot, Bos, Vos, Peters, Hendriks, van Leeuwen, Dekker, Brouwer, de Wit, Dijkstra, Smits, de Graaf,"
               "van der Meer, van der Linden, Kok, Jacobs, de Haan, Vermeulen, van den Heuvel, van der Veen,"
               "van den Broek, de Bruijn, van der Heijden, Schouten, van Beek, Willems, van Vliet, Hoekstra, Maas,"
               "Verhoeven, Koster, van Dam, Prins, Blom, Huisman, Kuipers, van Wijk, Post, Veenstra, Kramer, Scholten"),
        _split("Emma, Sophie, Julia, Anna, Lisa, Isa, Sanne, Fleur, Eva, Lotte, Noa, Tess, Lieke, Femke, Anouk, Romy,"
               "Iris, Esmée, Chloë, Zoë, Maud, Demi, Britt, Kim, Naomi, Yara, Amber, Jasmijn, Sara, Mila, Anna Maria"),
        _split("Daan, Sem, Lucas, Levi, Finn, Milan, Jesse, Thijs, Lars, Bram, Ruben, Tim, Stijn, Luuk, Sven, Niels,"
               "Jeroen, Ryan, Dylan, Kevin, Joost, Mees, Gijs, Noah, Johannes Petrus"),
    ),
    "pl": (
        _split("Nowak, Kowalski, Wójcik, Kowalczyk, Lewandowski, Mazur, Krawczyk, Kaczmarek, Piotrowski, Grabowski,"
               "Pawlowski, Michalski, Król, Wieczorek, Majewski, Olszewski, Malinowski, Jaworski, Adamczyk, Dudek,"
               "Nowicki, Pawlak, Górski, Witkowski, Walczak, Sikora, Baran, Rutkowski"),
        _split("Anna, Katarzyna, Magdalena, Agnieszka, Joanna, Monika, Ewa, Marta, Aleksandra, Natalia, Karolina, Paulina"),
        _split("Piotr, Krzysztof, Tomasz, Pawel, Michal, Marcin, Lukasz, Jakub, Adam, Kamil, Mateusz, Dawid, Grzegorz"),
    ),
    "ro": (
        _split("Popescu, Ionescu, Popa, Pop, Radu, Dumitru, Stan, Stoica, Gheorghe, Matei, Ciobanu, Rusu, Munteanu,"
               "Constantin, Marin, Dinu, Lazar, Florea, Moldovan, Ilie"),
        _split("Maria, Elena, Ioana, Andreea, Alexandra, Mihaela, Cristina, Gabriela, Roxana, Denisa"),
        _split("Andrei, Alexandru, Ion, Mihai, Gabriel, Florin, Adrian, Ionut, Marius, Bogdan, Stefan, Cristian"),
    ),
    "bg": (
        _split("Ivanov, Georgiev, Dimitrov, Petrov, Nikolov, Hristov, Stoyanov, Todorov, Iliev, Angelov, Kolev, Yordanov"),
        _split("Maria, Ivana, Elena, Desislava, Gergana, Yordanka, Nikol, Viktoria, Radostina, Teodora"),
        _split("Georgi, Ivan, Dimitar, Nikolay, Petar, Hristo, Stoyan, Todor, Kaloyan, Martin"),
    ),
    "hu": (
        _split("Nagy, Kovács, Tóth, Szabó, Horváth, Varga, Kiss, Molnár, Németh, Farkas, Balogh, Papp"),
        _split("Anna, Eszter, Zsófia, Katalin, Réka, Viktória, Nikolett, Dóra"),
        _split("László, István, József, Zoltán, Gábor, Attila, Tamás, Bence"),
    ),
    "ce": (
        _split("Kazlauskas, Jankauskas, Petrauskas, Vasiliauskas, Novák, Horák, Dvorák, Kucera, Svoboda, Baláz"),
        _split("Ruta, Egle, Laura, Jurgita, Petra, Lucie, Zuzana, Jana"),
        _split("Tomas, Mantas, Darius, Lukas, Jan, Martin, Peter, Marek"),
    ),
    "de": (
        _split("Müller, Schmidt, Schneider, Fischer, Weber, Meyer, Wagner, Becker, Schulz, Hoffmann, Koch, Schäfer"),
        _split("Lena, Laura, Sarah, Julia, Anna, Lea, Jana, Katrin"),
        _split("Jonas, Leon, Lukas, Felix, Max, Paul, Tobias, Florian"),
    ),
    "ng": (
        _split("Okafor, Adeyemi, Eze, Okonkwo, Adebayo, Nwosu, Ogunleye, Obi, Chukwu, Bello, Osagie, Igbinosa,"
               "Omoregie, Edosa, Okoro, Nnamdi"),
        _split("Blessing, Joy, Precious, Faith, Mercy, Gift, Esther, Favour, Patience, Happiness, Osas, Grace"),
        _split("Chinedu, Emeka, Tunde, Osaro, Samuel, Daniel, Ikenna, Uche, Efosa, Kingsley"),
    ),
    "ua": (
        _split("Shevchenko, Kovalenko, Bondarenko, Tkachenko, Kravchenko, Oliynyk, Melnyk, Boyko, Kovalchuk, Moroz,"
               "Lysenko, Marchenko"),
        _split("Olena, Iryna, Oksana, Nataliia, Yuliia, Kateryna, Tetiana, Anastasiia"),
        _split("Oleksandr, Andrii, Serhii, Dmytro, Volodymyr, Mykola, Ivan, Yurii"),
    ),
    "ar": (
        _split("El Amrani, Benali, El Idrissi, Bakkali, Ouali, El Khatib, Haddad, Al-Hassan, Khalil, Mansour, Hamdan,"
               "Said, Rahimi, Karimi, Benyahia"),
        _split("Fatima, Nadia, Samira, Amina, Yasmina, Salma, Rania, Layla, Noor, Zahra"),
        _split("Mohamed, Ahmed, Youssef, Omar, Karim, Bilal, Hamza, Khaled, Mustafa, Ali"),
    ),
    "er": (
        _split("Tesfay, Gebremedhin, Haile, Kidane, Berhane, Tekle, Mehari, Ghebreyesus, Yohannes, Negash"),
        _split("Senait, Helen, Rahel, Selam, Meron, Luwam, Yordanos, Saba"),
        _split("Yonas, Dawit, Filmon, Samson, Tesfalem, Merhawi, Abraham, Robel"),
    ),
    "vn": (
        _split("Nguyen, Tran, Le, Pham, Hoang, Vu, Phan, Dang, Bui, Do, Ngo, Duong"),
        _split("Thi Lan, Thi Huong, Thi Mai, Thi Hoa, Ngoc Anh, Thu Trang, Thi Hanh"),
        _split("Van Minh, Van Hung, Duc Anh, Van Nam, Quang Huy, Minh Tuan, Van Long"),
    ),
    "cn": (
        _split("Wang, Li, Zhang, Liu, Chen, Yang, Huang, Zhao, Wu, Zhou, Xu, Sun"),
        _split("Xiu Ying, Mei, Li Na, Jing, Yan, Hui, Xiaoyan"),
        _split("Wei, Jun, Lei, Hao, Jian, Ming, Tao, Qiang"),
    ),
    "pt": (
        _split("Silva, Santos, Oliveira, Souza, Rodrigues, Ferreira, Alves, Pereira, Lima, Gomes, Costa, Gonçalves"),
        _split("Ana, Juliana, Camila, Fernanda, Larissa, Bruna, Beatriz, Gabriela"),
        _split("João, Pedro, Lucas, Gabriel, Rafael, Matheus, Felipe, Thiago"),
    ),
    "ph": (
        _split("Santos, Reyes, Cruz, Bautista, Garcia, Mendoza, Dela Cruz, Villanueva, Ramos, Aquino, Castillo"),
        _split("Maria Cristina, Jocelyn, Rowena, Marites, Analyn, Kristine"),
        _split("Jose, Mark Anthony, Ramon, Jericho, Rodel, Arnel"),
    ),
    "in": (
        _split("Singh, Kumar, Sharma, Patel, Gupta, Reddy, Nair, Das, Khan, Yadav"),
        _split("Priya, Anjali, Pooja, Sunita, Kavita, Deepa"),
        _split("Rahul, Amit, Suresh, Ravi, Vikram, Arjun"),
    ),
    "tr": (
        _split("Yilmaz, Kaya, Demir, Sahin, Çelik, Yildiz, Öztürk, Aydin, Arslan, Dogan"),
        _split("Elif, Zeynep, Merve, Esra, Aylin, Büsra"),
        _split("Mehmet, Mustafa, Ahmet, Emre, Burak, Murat"),
    ),
    "sr": (
        _split("Kartosen, Ramdin, Sewdien, Pinas, Kromodimedjo, Jagroep, Biharie, Macnack, Sitaldin, Lie, Held"),
        _split("Shanti, Priya, Sharon, Naomi, Esther, Rachel"),
        _split("Ravi, Glenn, Sergio, Romano, Dinesh, Marciano"),
    ),
    "th": (
        _split("Srisuk, Wongsa, Chaiyaporn, Boonmee, Saelim, Kaewkla"),
        _split("Siriporn, Malee, Kanya, Nok, Pim"),
        _split("Somchai, Anan, Niran, Chai"),
    ),
}
COUNTRY_POOL = {
    "NL": "nl", "PL": "pl", "RO": "ro", "BG": "bg", "HU": "hu", "LT": "ce", "SK": "ce", "CZ": "ce", "DE": "de",
    "PT": "pt", "NG": "ng", "UG": "ng", "UA": "ua", "MA": "ar", "SY": "ar", "DZ": "ar", "AF": "ar", "ER": "er",
    "VN": "vn", "CN": "cn", "BR": "pt", "PH": "ph", "IN": "in", "TR": "tr", "SR": "sr", "TH": "th",
}
# Country words organisations write instead of ISO codes (mapped in their mapping files).
COUNTRY_WORDS = {
    # code: (Dutch adjective, Dutch country name, English adjective)
    "NL": ("Nederlandse", "Nederland", "Dutch"),
    "PL": ("Poolse", "Polen", "Polish"), "RO": ("Roemeense", "Roemenië", "Romanian"),
    "BG": ("Bulgaarse", "Bulgarije", "Bulgarian"), "HU": ("Hongaarse", "Hongarije", "Hungarian"),
    "LT": ("Litouwse", "Litouwen", "Lithuanian"), "SK": ("Slowaakse", "Slowakije", "Slovak"),
    "CZ": ("Tsjechische", "Tsjechië", "Czech"), "DE": ("Duitse", "Duitsland", "German"),
    "PT": ("Portugese", "Portugal", "Portuguese"), "NG": ("Nigeriaanse", "Nigeria", "Nigerian"),
    "UG": ("Oegandese", "Oeganda", "Ugandan"), "UA": ("Oekraïense", "Oekraïne", "Ukrainian"),
    "MA": ("Marokkaanse", "Marokko", "Moroccan"), "SY": ("Syrische", "Syrië", "Syrian"),
    "DZ": ("Algerijnse", "Algerije", "Algerian"), "AF": ("Afghaanse", "Afghanistan", "Afghan"),
    "ER": ("Eritrese", "Eritrea", "Eritrean"), "VN": ("Vietnamese", "Vietnam", "Vietnamese"),
    "CN": ("Chinese", "China", "Chinese"), "BR": ("Braziliaanse", "Brazilië", "Brazilian"),
    "PH": ("Filipijnse", "Filipijnen", "Filipino"), "IN": ("Indiase", "India", "Indian"),
    "TR": ("Turkse", "Turkije", "Turkish"), "SR": ("Surinaamse", "Suriname", "Surinamese"),
    "TH": ("Thaise", "Thailand", "Thai"),
}
